"""One promotion DAG per spec in ``[bundle_promotion] specs_folder``, by default
include/promotions beside the DAGs folder. A bad spec shows as an import error naming its
file, line and field; the other specs still produce their DAGs. (Airflow's DAG processor
reads a file only when it mentions both "airflow" and "dag", as this docstring does.)"""

from airflow.sdk import get_parsing_context

from bundle_promotion import settings
from bundle_promotion.dags.factory import promotion_dags

# A worker or the triggerer parses this file for one task: build only that task's DAG.
globals().update(promotion_dags(settings.specs_folder(), dag_id=get_parsing_context().dag_id))
