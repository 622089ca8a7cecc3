//! Fuzz target `smtp_command`: LineReader + parse_command + encode round trip.
//!
//! Byte 0 picks the line limit, the leniency knobs and the chunk size; the rest is
//! fed to `LineReader` in chunks. Properties: no panic; a line never exceeds the
//! limit; the reader never holds more than limit + 1 bytes; every parsed command
//! re-encodes to a line that parses to the same command.
#![no_main]

use postern_smtp_proto::{Leniency, LineReader, parse_command};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let limit = [16, 64, 2048][usize::from(ctl & 3) % 3];
    let chunk = usize::from(ctl >> 4) + 1;
    let len = Leniency {
        strict_rfc821_envelopes: ctl & 4 != 0,
        strict_smtputf8: ctl & 8 != 0,
        sasl_enabled: ctl & 4 != 0,
        allow_binarymime: ctl & 8 != 0,
    };
    let mut reader = LineReader::new(limit);
    for mut piece in input.chunks(chunk) {
        while !piece.is_empty() {
            let (n, line) = reader.read_line(piece);
            assert!(n <= piece.len());
            assert!(reader.buffered() <= limit + 1);
            piece = &piece[n..];
            let Some(line) = line else {
                assert_eq!(piece.len(), 0, "reader stopped early without a line");
                continue;
            };
            assert!(line.bytes.len() <= limit);
            check(&line.bytes, &len);
        }
    }
    // Also the whole input as one line, bypassing the reader's limit.
    check(input, &len);
});

fn check(line: &[u8], len: &Leniency) {
    if let Ok(cmd) = parse_command(line, len) {
        let wire = cmd.encode();
        let again = parse_command(wire.as_bytes(), len);
        assert_eq!(again.as_ref(), Ok(&cmd), "round trip of {wire:?}");
    }
}
