-- Every production run of the three lines in one relation, with the columns they share. The
-- marts aggregate this; `component` is also the name of the run's raw table.
{%- set shared = [
    "component", "run_id", "lot_code", "line", "shift", "produced_at", "production_date",
    "units_produced", "units_rejected", "units_good", "qc_passed",
] %}
{% for model in ["stg_refills", "stg_bodies", "stg_springs"] %}
select {{ shared | join(", ") }}
from {{ ref(model) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
