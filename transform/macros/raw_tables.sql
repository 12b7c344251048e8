{#- The raw tables declared in the generated sources (models/sources.yml), as
    (relation, source node) pairs, read from the project graph at execution time: a raw
    table added by `pen-factory dbt-sources` is profiled without a code change. Empty while
    dbt parses the project (the graph is filled in only for execution). -#}
{% macro raw_tables() %}
    {%- set tables = [] %}
    {%- if execute %}
        {%- for node in graph.sources.values() | sort(attribute="name") %}
            {%- if node.source_name == "raw" %}
                {%- set relation = api.Relation.create(
                    database=node.database, schema=node.schema, identifier=node.identifier
                ) %}
                {%- do tables.append((relation, node)) %}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
    {{ return(tables) }}
{% endmacro %}


{#- Column types whose smallest and largest values are profiled. -#}
{% macro is_numeric_type(data_type) %}
    {%- set base = data_type.split("(")[0] | trim | lower %}
    {{ return(base in ["smallint", "integer", "bigint", "numeric", "real", "double precision"]) }}
{% endmacro %}
