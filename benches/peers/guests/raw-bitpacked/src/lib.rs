//! `examples/bitpacked` behind the raw core ABI (see `guest-glue`).

guest_glue::raw_abi!(|frame| guest_glue::document_json(bitpacked::decode(frame)));
