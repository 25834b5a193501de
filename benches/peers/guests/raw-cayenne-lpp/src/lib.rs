//! `examples/cayenne-lpp` behind the raw core ABI (see `guest-glue`).

guest_glue::raw_abi!(|frame| guest_glue::document_json(cayenne_lpp::decode(frame)));
