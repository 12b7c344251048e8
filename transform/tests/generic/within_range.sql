{#- The column stays within its physical range (inclusive bounds, either may be left out;
    NULLs are left to not_null). A value outside it is a sensor or entry error, not a
    measurement. Returns the failing rows. -#}
{% test within_range(model, column_name, min_value=none, max_value=none) %}
select *
from {{ model }}
where false
{%- if min_value is not none %}
   or {{ column_name }} < {{ min_value }}
{%- endif %}
{%- if max_value is not none %}
   or {{ column_name }} > {{ max_value }}
{%- endif %}
{% endtest %}
