{#- Freshness of a raw table: its last successful load (from the target's load history) is at
    most `max_age_hours` old (default: the `raw_max_load_age_hours` var). A stale table makes
    today's report show yesterday's production without anyone noticing, so it fails the build.
    Returns one row for a stale or never loaded table. -#}
{% test load_is_fresh(model, max_age_hours=none) %}
{%- set hours = max_age_hours if max_age_hours is not none else var("raw_max_load_age_hours") %}
select
    '{{ model.identifier }}' as table_name,
    max(finished_at) as last_successful_load,
    {{ hours }} as max_age_hours
from {{ source("pipeline", "_load_history") }}
where table_name = '{{ model.identifier }}'
  and status in {{ successful_load_statuses() }}
having max(finished_at) is null
    or max(finished_at) < now() - make_interval(hours => {{ hours }})
{% endtest %}
