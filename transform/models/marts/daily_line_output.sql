-- Daily output per component, machine line and shift: runs, units produced, rejected and
-- good, the reject rate, and how many runs failed quality control.
select
    production_date,
    component,
    line,
    shift,
    count(*) as runs,
    sum(units_produced) as units_produced,
    sum(units_rejected) as units_rejected,
    sum(units_good) as units_good,
    round(sum(units_rejected)::numeric / nullif(sum(units_produced), 0), 4) as reject_rate,
    count(*) filter (where not qc_passed) as runs_failed_qc
from {{ ref("int_production_runs") }}
group by production_date, component, line, shift
