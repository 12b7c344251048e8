{#- The anomaly checks: the latest profiled load of each raw table, measure by measure,
    against the same measure over the table's previous `quality_history_loads` loads.

    The expected range is the range the history spanned, widened by the measure's `warn`
    tolerance (var `quality_thresholds` in dbt_project.yml); outside it the measure warns,
    outside the range widened by the `fail` tolerance it fails. A relative tolerance widens
    by a fraction of the value (0.2: 20 %), an absolute one by that amount (NULL rate 0.05:
    five percentage points). A measure that has never been negative is not expected below
    zero, a rate not above one. With fewer than `quality_min_history` earlier loads the level is `learning`, and a
    measure without a value (the smallest value of an all-NULL column) is `no_data`.

    Levels: ok, warn, fail, learning, no_data. The tests on this view fail the build on
    `fail` and warn on `warn`; `pen-factory quality-report` prints the same rows. -#}
{%- set thresholds = var("quality_thresholds") %}

with profiles as (
    select * from {{ ref("load_profiles") }}
),

thresholds (measure, tolerance_kind, warn_tolerance, fail_tolerance) as (
    values
    {%- for measure, limits in thresholds.items() %}
        ('{{ measure }}', '{{ limits.kind }}', {{ limits.warn }}::numeric, {{ limits.fail }}::numeric)
        {{- "," if not loop.last }}
    {%- endfor %}
),

loads as (
    select
        table_name,
        load_id,
        row_number() over (partition by table_name order by load_id desc) as load_rank
    from (select distinct table_name, load_id from profiles) as profiled
),

latest as (
    select profiles.*
    from profiles
    join loads using (table_name, load_id)
    where loads.load_rank = 1
),

history as (
    select
        profiles.table_name,
        profiles.measure,
        profiles.column_name,
        count(profiles.value) as history_loads,
        min(profiles.value) as history_min,
        max(profiles.value) as history_max
    from profiles
    join loads using (table_name, load_id)
    where loads.load_rank between 2 and {{ var("quality_history_loads") }} + 1
    group by profiles.table_name, profiles.measure, profiles.column_name
),

ranges as (
    select
        latest.table_name,
        latest.load_id,
        latest.loaded_at,
        latest.measure,
        latest.column_name,
        latest.value,
        coalesce(history.history_loads, 0) as history_loads,
        history.history_min,
        history.history_max,
        thresholds.tolerance_kind,
        thresholds.warn_tolerance,
        thresholds.fail_tolerance,
        history.history_min >= 0 as never_negative,
        case thresholds.tolerance_kind
            when 'relative' then abs(history.history_min) else 1
        end as low_scale,
        case thresholds.tolerance_kind
            when 'relative' then abs(history.history_max) else 1
        end as high_scale
    from latest
    join thresholds using (measure)
    left join history using (table_name, measure, column_name)
),

bounds as (
    select
        table_name, load_id, loaded_at, measure, column_name, value, history_loads,
        history_min, history_max, tolerance_kind, warn_tolerance, fail_tolerance,
        -- A measure that has never been negative is not expected below zero; a rate (NULL
        -- rate, reject rate) is a fraction and not expected above one.
        case when never_negative
            then greatest(0, history_min - warn_tolerance * low_scale)
            else history_min - warn_tolerance * low_scale
        end as expected_low,
        case when measure like '%\_rate'
            then least(1, history_max + warn_tolerance * high_scale)
            else history_max + warn_tolerance * high_scale
        end as expected_high,
        case when never_negative
            then greatest(0, history_min - fail_tolerance * low_scale)
            else history_min - fail_tolerance * low_scale
        end as fail_low,
        case when measure like '%\_rate'
            then least(1, history_max + fail_tolerance * high_scale)
            else history_max + fail_tolerance * high_scale
        end as fail_high
    from ranges
),

judged as (
    select
        *,
        case
            when history_loads < {{ var("quality_min_history") }} then 'learning'
            when value is null then 'no_data'
            when value < fail_low or value > fail_high then 'fail'
            when value < expected_low or value > expected_high then 'warn'
            else 'ok'
        end as level
    from bounds
)

select
    table_name,
    load_id,
    loaded_at,
    measure,
    nullif(column_name, '') as column_name,
    value,
    level,
    expected_low,
    expected_high,
    fail_low,
    fail_high,
    history_loads,
    history_min,
    history_max,
    tolerance_kind,
    warn_tolerance,
    fail_tolerance,
    '{{ source("pipeline", "_load_history").schema }}.' || table_name || ': ' || measure
        || coalesce(' of ' || nullif(column_name, ''), '')
        || ' is ' || {{ readable_number("value") }}
        || case
            when level = 'learning' then
                ' (' || history_loads || ' earlier loads, ' || {{ var("quality_min_history") }}
                || ' needed for a verdict)'
            else
                ', expected ' || {{ readable_number("expected_low") }} || ' to ' || {{ readable_number("expected_high") }}
                || ' (fails outside ' || {{ readable_number("fail_low") }} || ' to ' || {{ readable_number("fail_high") }}
                || '; the ' || history_loads || ' earlier loads: '
                || {{ readable_number("history_min") }} || ' to ' || {{ readable_number("history_max") }} || ')'
        end as message
from judged
