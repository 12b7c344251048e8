{#- Reconciliation: a table the last load replaced holds exactly the rows that load wrote (the
    count the target recorded in its load history, in the same transaction). A difference
    means rows appeared or vanished outside the pipeline. Tables last loaded by upsert or
    append hold more than one load's rows and are not compared. Returns one row on a
    mismatch, with both counts. -#}
{% test rows_match_last_load(model) %}
with last_load as (
    select id, rows, status
    from {{ source("pipeline", "_load_history") }}
    where table_name = '{{ model.identifier }}'
      and status in {{ successful_load_statuses() }}
    order by id desc
    limit 1
)

select
    '{{ model.identifier }}' as table_name,
    last_load.id as load_id,
    last_load.rows as rows_loaded,
    table_rows.n as rows_in_table
from last_load
cross join (select count(*) as n from {{ model }}) as table_rows
where last_load.status = 'replaced'
  and last_load.rows <> table_rows.n
{% endtest %}
