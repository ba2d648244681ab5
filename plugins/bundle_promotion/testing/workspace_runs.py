"""Job runs of one emulated workspace, with outcomes fixed by job parameters.

A run's outcome is deterministic. Its effective job parameters (the job's
``parameters`` defaults overridden by run-now ``job_parameters``) decide it:

- ``emulator_result``: the ``result_state`` it ends in (default ``SUCCESS``; ``FAILED``
  and ``CANCELED`` among others).
- ``emulator_queue_seconds``: how long it stays ``QUEUED`` first (default ``0``).
- ``emulator_run_seconds``: how long it then stays ``RUNNING`` (default ``0``).

A run goes QUEUED → RUNNING → TERMINATED, like a real one; ``runs/cancel`` ends it early.

State is computed from the wall clock whenever a run is read, so no background
work is needed to move a run along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundle_promotion.testing.workspace_jobs import Job
from bundle_promotion.testing.workspace_protocol import IdSequence, invalid_parameter, now_ms

RESULT_PARAMETER = "emulator_result"
DURATION_PARAMETER = "emulator_run_seconds"
QUEUE_PARAMETER = "emulator_queue_seconds"
ACTIVE_STATES = ("QUEUED", "RUNNING")

TASK_FAILURE_MESSAGE = "Workload failed, see run output for details"
MULTI_TASK_OUTPUT_MESSAGE = (
    "Retrieving the output of runs with multiple tasks is not supported. "
    "Please retrieve the output of each individual task run instead."
)


@dataclass(frozen=True)
class Termination:
    """``status.termination_details`` of a finished run, and the state message that goes with it."""

    code: str
    type: str
    message: str


# The result states a run can be told to end in, and how the service reports each one.
TERMINATIONS = {
    "SUCCESS": Termination("SUCCESS", "SUCCESS", ""),
    "SUCCESS_WITH_FAILURES": Termination("SUCCESS_WITH_FAILURES", "SUCCESS", ""),
    "FAILED": Termination("RUN_EXECUTION_ERROR", "CLIENT_ERROR", TASK_FAILURE_MESSAGE),
    "TIMEDOUT": Termination("CANCELED", "CLIENT_ERROR", "Run timed out."),
    "CANCELED": Termination("CANCELED", "CLIENT_ERROR", "Run was canceled by the platform."),
}
USER_CANCELED = Termination("USER_CANCELED", "SUCCESS", "Run was cancelled by a user.")


@dataclass(frozen=True)
class Phase:
    """Where a run stands at one instant."""

    life_cycle_state: str
    result_state: str | None
    end_time: int
    termination: Termination | None
    user_cancelled: bool = False

    def state(self, message: str) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": self.life_cycle_state, "state_message": message}
        if self.result_state is not None:
            state["result_state"] = self.result_state
            state["user_cancelled_or_timedout"] = self.user_cancelled or self.result_state == "TIMEDOUT"
        return state

    def status(self, message: str) -> dict[str, Any]:
        if self.termination is None:
            return {"state": self.life_cycle_state}
        details = {"code": self.termination.code, "type": self.termination.type, "message": message}
        return {"state": self.life_cycle_state, "termination_details": details}


@dataclass
class TaskRun:
    run_id: int
    task_key: str


@dataclass
class Run:
    run_id: int
    job: Job
    start_time: int
    running_from: int
    planned_end_time: int
    result_state: str
    job_parameters: list[dict[str, str]]
    tasks: list[TaskRun]
    page_url: str
    canceled_at: int | None = None

    def phase(self, now: int) -> Phase:
        if self.canceled_at is not None:
            return Phase("TERMINATED", "CANCELED", self.canceled_at, USER_CANCELED, user_cancelled=True)
        if now < self.running_from:
            return Phase("QUEUED", None, 0, None)
        if now < self.planned_end_time:
            return Phase("RUNNING", None, 0, None)
        return Phase("TERMINATED", self.result_state, self.planned_end_time, TERMINATIONS[self.result_state])

    def is_active(self, now: int) -> bool:
        return self.phase(now).life_cycle_state in ACTIVE_STATES

    def run_message(self, phase: Phase) -> str:
        if phase.life_cycle_state == "QUEUED":
            return "Waiting for an available cluster"
        if phase.termination is None:
            return "In run"
        if phase.result_state == "FAILED" and self.tasks:
            return f"Task {self.tasks[0].task_key} failed with message: {TASK_FAILURE_MESSAGE}."
        return phase.termination.message

    def to_api(self, now: int, *, include_tasks: bool = True) -> dict[str, Any]:
        phase = self.phase(now)
        message = self.run_message(phase)
        run = {
            "job_id": self.job.job_id,
            "run_id": self.run_id,
            "number_in_job": self.run_id,
            "original_attempt_run_id": self.run_id,
            "creator_user_name": self.job.creator_user_name,
            "run_name": self.job.name,
            "run_type": "JOB_RUN",
            "trigger": "ONE_TIME",
            "format": "MULTI_TASK",
            "attempt_number": 0,
            "run_page_url": self.page_url,
            "state": phase.state(message),
            "status": phase.status(message),
            **self._timing(phase, now),
            "job_parameters": self.job_parameters,
        }
        if include_tasks:
            run["tasks"] = [self.task_to_api(task, phase, now) for task in self.tasks]
        return run

    def task_to_api(self, task: TaskRun, phase: Phase, now: int) -> dict[str, Any]:
        message = TASK_FAILURE_MESSAGE if phase.result_state == "FAILED" else self.run_message(phase)
        return {
            "run_id": task.run_id,
            "task_key": task.task_key,
            "attempt_number": 0,
            "state": phase.state(message),
            "status": phase.status(message),
            **self._timing(phase, now),
        }

    def task_run_to_api(self, task: TaskRun, now: int) -> dict[str, Any]:
        """runs/get for the run of one task: that task, inside the frame of its parent run."""
        phase = self.phase(now)
        entry = self.task_to_api(task, phase, now)
        page_url = self.page_url.rsplit("/", 1)[0] + f"/{task.run_id}"
        frame = {"job_id": self.job.job_id, "parent_run_id": self.run_id, "run_name": task.task_key}
        return {**entry, **frame, "run_page_url": page_url, "tasks": [entry]}

    def _timing(self, phase: Phase, now: int) -> dict[str, int]:
        duration = (phase.end_time or now) - self.start_time
        return {
            "start_time": self.start_time,
            "end_time": phase.end_time,
            "setup_duration": 0,
            "execution_duration": duration,
            "cleanup_duration": 0,
            "run_duration": duration,
        }


class RunStore:
    """Runs and task runs by id. Every method raises ``ApiError`` as the real endpoint would."""

    def __init__(self, ids: IdSequence, page_url_prefix: str) -> None:
        self._ids = ids
        self._page_url_prefix = page_url_prefix
        self._runs: dict[int, Run] = {}
        self._task_runs: dict[int, tuple[Run, TaskRun]] = {}
        self._idempotency_tokens: dict[str, int] = {}

    def run_now(self, job: Job, overrides: dict[str, str], idempotency_token: str | None) -> Run:
        if idempotency_token and idempotency_token in self._idempotency_tokens:
            return self._runs[self._idempotency_tokens[idempotency_token]]
        run = self._start(job, effective_parameters(job, overrides))
        if idempotency_token:
            self._idempotency_tokens[idempotency_token] = run.run_id
        return run

    def get(self, run_id: int) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise invalid_parameter(f"Run {run_id} does not exist.")
        return run

    def get_any(self, run_id: int) -> dict[str, Any]:
        """runs/get: a job run, or the run of one of its tasks."""
        now = now_ms()
        if run_id in self._task_runs:
            run, task = self._task_runs[run_id]
            return run.task_run_to_api(task, now)
        return self.get(run_id).to_api(now)

    def output(self, run_id: int) -> dict[str, Any]:
        """runs/get-output: a task run's output; a job run's only if it has at most one task."""
        now = now_ms()
        if run_id in self._task_runs:
            run, task = self._task_runs[run_id]
            return task_output(run.task_run_to_api(task, now), run, task.task_key, now)
        run = self.get(run_id)
        if len(run.tasks) > 1:
            raise invalid_parameter(MULTI_TASK_OUTPUT_MESSAGE)
        if run.tasks:
            return self.output(run.tasks[0].run_id)
        return task_output(run.to_api(now), run, run.job.name, now)

    def newest_first(self, job_id: int | None, *, active_only: bool, completed_only: bool) -> list[Run]:
        if active_only and completed_only:
            raise invalid_parameter("active_only and completed_only cannot both be true.")
        now = now_ms()
        runs = sorted(self._runs.values(), key=lambda run: run.run_id, reverse=True)
        return [
            run
            for run in runs
            if (job_id is None or run.job.job_id == job_id)
            and not (active_only and not run.is_active(now))
            and not (completed_only and run.is_active(now))
        ]

    def cancel(self, run_id: int) -> None:
        run = self.get(run_id)
        now = now_ms()
        if run.is_active(now):
            run.canceled_at = now

    def cancel_all(self, job_id: int) -> None:
        for run in self.newest_first(job_id, active_only=True, completed_only=False):
            self.cancel(run.run_id)

    def _start(self, job: Job, parameters: dict[str, str]) -> Run:
        result_state, queued, seconds = outcome_of(parameters)
        run_id = self._ids.next()
        start = now_ms()
        running_from = start + round(queued * 1000)
        tasks = [TaskRun(self._ids.next(), task["task_key"]) for task in job.settings.get("tasks", [])]
        run = Run(
            run_id=run_id,
            job=job,
            start_time=start,
            running_from=running_from,
            planned_end_time=running_from + round(seconds * 1000),
            result_state=result_state,
            job_parameters=parameter_list(job, parameters),
            tasks=tasks,
            page_url=f"{self._page_url_prefix}#job/{job.job_id}/run/{run_id}",
        )
        self._runs[run_id] = run
        self._task_runs.update({task.run_id: (run, task) for task in tasks})
        return run


def parameter_defaults(job: Job) -> dict[str, str]:
    return {str(p["name"]): str(p.get("default", "")) for p in job.settings.get("parameters", [])}


def effective_parameters(job: Job, overrides: dict[str, str]) -> dict[str, str]:
    """The job's parameter defaults, overridden by those given to run-now."""
    return {**parameter_defaults(job), **overrides}


def parameter_list(job: Job, parameters: dict[str, str]) -> list[dict[str, str]]:
    """``job_parameters`` of a run: each parameter with its value, and its default if the job has one."""
    defaults = parameter_defaults(job)
    listed = []
    for name in sorted(parameters):
        entry = {"name": name, "value": parameters[name]}
        if name in defaults:
            entry["default"] = defaults[name]
        listed.append(entry)
    return listed


def outcome_of(parameters: dict[str, str]) -> tuple[str, float, float]:
    """The result state, and the seconds queued and running, that the emulator parameters ask for."""
    result_state = parameters.get(RESULT_PARAMETER, "SUCCESS").upper()
    if result_state not in TERMINATIONS:
        allowed = ", ".join(TERMINATIONS)
        raise invalid_parameter(f"{RESULT_PARAMETER} must be one of {allowed}, not {result_state!r}.")
    return result_state, _seconds(parameters, QUEUE_PARAMETER), _seconds(parameters, DURATION_PARAMETER)


def _seconds(parameters: dict[str, str], name: str) -> float:
    try:
        seconds = float(parameters.get(name, "0"))
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise invalid_parameter(f"{name} must be a number of seconds >= 0.")
    return seconds


def task_output(metadata: dict[str, Any], run: Run, task_key: str, now: int) -> dict[str, Any]:
    """runs/get-output: the run's metadata, plus ``error`` and ``error_trace`` once it has failed."""
    output: dict[str, Any] = {"metadata": metadata}
    if run.phase(now).result_state == "FAILED":
        error = f"Exception: {RESULT_PARAMETER}=FAILED made this run fail"
        output["error"] = error
        output["error_trace"] = (
            f'Traceback (most recent call last):\n  File "{task_key}", line 1, in <module>\n{error}'
        )
    return output
