//! A codec that opens a TCP connection. Using `std::net` makes its component import
//! `wasi:sockets`, which the host does not provide: it must refuse the component at load.
//! If it ever ran, it returns `{"connected": bool, "error": text | null}`.

use sluice_sdk::{Codec, CodecError, Uplink, Value, json};

/// Connects to 127.0.0.1:80.
struct Sockets;

impl Codec for Sockets {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        Ok(match std::net::TcpStream::connect("127.0.0.1:80") {
            Ok(_) => json!({ "connected": true, "error": null }),
            Err(e) => json!({ "connected": false, "error": e.to_string() }),
        })
    }
}

sluice_sdk::export_codec!(Sockets);
