{#- No measure of the latest loads is at this anomaly level (`warn` or `fail`) in the
    `load_anomalies` model. Set the test's severity to match the level. Returns one row per
    anomalous measure; the run's log lists them with table, measure, expected range and
    value (see macros/report_load_anomalies.sql). -#}
{% test no_anomaly(model, level) %}
select *
from {{ model }}
where level = '{{ level }}'
{% endtest %}
