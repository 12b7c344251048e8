{#- One profile per load of each raw table, kept across runs (incremental): the table's row
    count after the load, the NULL rate of every column, the smallest and largest value of
    every numeric measurement (not key or *_id columns, whose ranges move by design) and the
    line's reject rate. The anomaly checks (load_anomalies) compare the latest load with the
    earlier ones.

    A load is identified by its row in the target's load history; the first `dbt build` after
    a load profiles it, later builds leave it alone. Everything is read in one statement, so
    the profile and the load it names come from the same committed state even while another
    load runs. -#}
{{ config(materialized="incremental", on_schema_change="fail") }}

{%- set tables = raw_tables() %}

with loads as (
    select distinct on (table_name)
        id as load_id,
        table_name,
        finished_at as loaded_at
    from {{ source("pipeline", "_load_history") }}
    where status in {{ successful_load_statuses() }}
    order by table_name, id desc
),

reject_rates as (
    select
        component as table_name,
        sum(units_rejected)::numeric / nullif(sum(units_produced), 0) as reject_rate
    from {{ ref("int_production_runs") }}
    group by component
),

measures as (
{%- for relation, node in tables %}
    {%- set key = node.meta.get("primary_key", []) %}
    {%- set columns = adapter.get_columns_in_relation(relation) %}
    select loads.load_id, m.measure, m.column_name, m.value
    from loads
    cross join (
        select
            count(*) as row_count
            {%- for column in columns %}
            , count({{ adapter.quote(column.name) }}) as count_{{ loop.index }}
            {%- if is_numeric_type(column.data_type) and column.name not in key
                  and not column.name.endswith("_id") %}
            , min({{ adapter.quote(column.name) }})::numeric as min_{{ loop.index }}
            , max({{ adapter.quote(column.name) }})::numeric as max_{{ loop.index }}
            {%- endif %}
            {%- endfor %}
        from {{ relation }}
    ) as p
    cross join lateral (values
        ('row_count', '', p.row_count::numeric)
        {%- for column in columns %}
        , ('null_rate', '{{ column.name }}', 1 - p.count_{{ loop.index }}::numeric / nullif(p.row_count, 0))
        {%- if is_numeric_type(column.data_type) and column.name not in key
              and not column.name.endswith("_id") %}
        , ('min_value', '{{ column.name }}', p.min_{{ loop.index }})
        , ('max_value', '{{ column.name }}', p.max_{{ loop.index }})
        {%- endif %}
        {%- endfor %}
    ) as m (measure, column_name, value)
    where loads.table_name = '{{ node.identifier }}'

    union all
{%- endfor %}

    select loads.load_id, 'reject_rate', '', reject_rates.reject_rate
    from loads
    join reject_rates using (table_name)
)

select
    loads.load_id,
    loads.table_name,
    loads.loaded_at,
    measures.measure,
    measures.column_name,
    measures.value,
    now() as profiled_at
from measures
join loads using (load_id)
{% if is_incremental() %}
where not exists (
    select 1 from {{ this }} as profiled where profiled.load_id = measures.load_id
)
{% endif %}
