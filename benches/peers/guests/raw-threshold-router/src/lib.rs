//! `examples/threshold-router` behind the raw core ABI (see `guest-glue`), with the default
//! thresholds (the bench binds no config).

guest_glue::raw_abi!(|input| {
    let (message, decoded) = guest_glue::route_input(input)?;
    let thresholds = threshold_router::Thresholds::default();
    guest_glue::decisions_json(threshold_router::route(&message, &decoded, &thresholds))
});
