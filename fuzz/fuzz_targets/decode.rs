//! `wire::decode` on arbitrary bytes: it never panics, and what it returns agrees
//! with the bytes (see `check_decode` in tests/props/packets.rs, shared with the
//! property tests): the id or INIT's version is the u32 after the type byte, and a
//! decoded request re-encodes to a complete packet that decodes to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/packets.rs"]
mod packets;

fuzz_target!(|data: &[u8]| {
    packets::check_decode(data);
});
