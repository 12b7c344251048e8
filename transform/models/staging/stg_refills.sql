-- One row per filling run of a refill line, in the vocabulary the three lines share
-- (run_id, component, units_produced, units_rejected, units_good, production_date), plus the
-- refill measurements and the sensor readings as typed columns.
select
    id as run_id,
    'refills'::text as component,
    lot_code,
    batch_code as ink_batch,
    line,
    shift,
    produced_at,
    {{ production_date("produced_at") }} as production_date,
    ink_color,
    ink_volume_ml,
    ink_volume_tolerance_ml,
    tip_diameter_mm,
    tip_tolerance_mm,
    tube_length_mm,
    units_produced,
    units_rejected,
    units_produced - units_rejected as units_good,
    qc_passed,
    defect_codes,
    (sensor_readings ->> 'ink_temp_c')::numeric as ink_temp_c,
    (sensor_readings ->> 'fill_pressure_bar')::numeric as fill_pressure_bar,
    (sensor_readings ->> 'viscosity_mpas')::numeric as viscosity_mpas,
    sensor_readings ->> 'station' as filler_station,
    operator_id,
    updated_at
from {{ source("raw", "refills") }}
