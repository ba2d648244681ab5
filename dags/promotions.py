"""One promotion DAG per spec in include/promotions/*.yaml (or the folder set in
``[bundle_promotion] specs_folder``). A bad spec shows as an import error naming its
file, line and field; the other specs still produce their DAGs."""

from pathlib import Path

from airflow.sdk import conf

from bundle_promotion.dags.factory import promotion_dags

_DEFAULT_SPECS = Path(__file__).resolve().parent.parent / "include" / "promotions"

_specs_folder = Path(conf.get("bundle_promotion", "specs_folder", fallback=str(_DEFAULT_SPECS)))
globals().update(promotion_dags(_specs_folder))
