{#- After `dbt build`, `run` or `test` (on-run-end in dbt_project.yml): one log line per
    measure of the latest loads that is at level warn or fail, saying which table, which
    measure, the expected range and the value seen - what the failing `no_anomaly` test
    counted. Nothing when the load_anomalies view has not been built yet. -#}
{% macro report_load_anomalies() %}
    {%- if execute and flags.WHICH in ["build", "run", "test"] %}
        {%- set relation = adapter.get_relation(
            database=target.database, schema=target.schema, identifier="load_anomalies"
        ) %}
        {%- if relation is not none %}
            {%- set found = run_query(
                "select level, message from " ~ relation
                ~ " where level in ('warn', 'fail')"
                ~ " order by level, table_name, measure, column_name"
            ) %}
            {%- for row in found.rows %}
                {%- do log("Load anomaly (" ~ row[0] ~ "): " ~ row[1], info=True) %}
            {%- endfor %}
        {%- endif %}
    {%- endif %}
{% endmacro %}
