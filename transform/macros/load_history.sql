{#- What the target writes into its load history (`raw._load_history`) for a load that
    committed: `replaced` (overwrite), `upserted` or `appended`. Anything else (`running`,
    `failed`, `interrupted`) left the table as it was. -#}
{% macro successful_load_statuses() -%}
    ('replaced', 'upserted', 'appended')
{%- endmacro %}


{#- The calendar day of a timestamp in the factory's time zone (var `factory_timezone`). -#}
{% macro production_date(column) -%}
    ({{ column }} at time zone '{{ var("factory_timezone") }}')::date
{%- endmacro %}


{#- A numeric expression as short text for messages: at most four decimals, no trailing
    zeros, `none` for NULL. -#}
{% macro readable_number(expression) -%}
    coalesce(trim_scale(round({{ expression }}, 4))::text, 'none')
{%- endmacro %}
