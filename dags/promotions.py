"""One promotion DAG per spec in ``[bundle_promotion] specs_folder``, by default
include/promotions beside the DAGs folder. A bad spec shows as an import error naming its
file, line and field; the other specs still produce their DAGs. (Airflow's DAG processor
reads a file only when it mentions both "airflow" and "dag", as this docstring does.)"""

from bundle_promotion import settings
from bundle_promotion.dags.factory import promotion_dags

globals().update(promotion_dags(settings.specs_folder()))
