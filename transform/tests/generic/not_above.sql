{#- The column never exceeds another column of the same row, e.g. rejected units never exceed
    produced units: more rejects than production means a miscount at the line, and every rate
    computed from the row would be wrong. Returns the failing rows. -#}
{% test not_above(model, column_name, ceiling) %}
select *
from {{ model }}
where {{ column_name }} > {{ ceiling }}
{% endtest %}
