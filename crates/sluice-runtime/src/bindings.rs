//! Host bindings generated from the guest contract in `wit/`.

#![allow(missing_docs)]

/// The `codec` world and every host interface of the contract.
pub mod codec {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "codec",
        imports: { default: trappable },
    });
}

/// The `router` world; host interfaces are shared with [`codec`].
pub mod router {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "router",
        with: {
            "sluice:codec/types": crate::bindings::codec::sluice::codec::types,
            "sluice:codec/log": crate::bindings::codec::sluice::codec::log,
            "sluice:codec/config": crate::bindings::codec::sluice::codec::config,
            "sluice:codec/state": crate::bindings::codec::sluice::codec::state,
            "sluice:codec/clock": crate::bindings::codec::sluice::codec::clock,
            "sluice:codec/metrics": crate::bindings::codec::sluice::codec::metrics,
        },
    });
}

pub use codec::sluice::codec::{clock, config, log, metrics, state, types};
