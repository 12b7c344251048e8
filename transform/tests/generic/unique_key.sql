{#- A composite primary key is unique (the single-column case is dbt's own `unique`). Returns
    one row per duplicated key with the number of rows sharing it. -#}
{% test unique_key(model, columns) %}
{%- set quoted = [] %}
{%- for column in columns %}{% do quoted.append(adapter.quote(column)) %}{% endfor %}
select {{ quoted | join(", ") }}, count(*) as rows_with_this_key
from {{ model }}
group by {{ quoted | join(", ") }}
having count(*) > 1
{% endtest %}
