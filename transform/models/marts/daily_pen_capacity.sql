-- Per production day: the good refills, bodies and springs made, and how many complete pens
-- they allow (a pen takes one of each), with the component that limits the day.
with good as (
    select
        production_date,
        coalesce(sum(units_good) filter (where component = 'refills'), 0) as good_refills,
        coalesce(sum(units_good) filter (where component = 'bodies'), 0) as good_bodies,
        coalesce(sum(units_good) filter (where component = 'springs'), 0) as good_springs
    from {{ ref("int_production_runs") }}
    group by production_date
)

select
    production_date,
    good_refills,
    good_bodies,
    good_springs,
    least(good_refills, good_bodies, good_springs) as pens_possible,
    case least(good_refills, good_bodies, good_springs)
        when good_refills then 'refills'
        when good_bodies then 'bodies'
        else 'springs'
    end as limiting_component
from good
