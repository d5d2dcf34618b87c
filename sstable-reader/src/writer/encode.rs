//! Big-endian primitives and length-prefixed byte strings as the writer emits them; vints come from the
//! crate's codec (`bytes`), this module adds their encoded size.
//!
//! Everything in an SSTable except the Summary.db offsets is big-endian. Cassandra's unsigned vint puts the
//! number of extra bytes in the leading one-bits of the first byte (at most 9 bytes in all); the signed vint
//! zig-zags first.

/// Bytes an unsigned vint takes for `value` (1..=9).
pub fn unsigned_vint_size(value: u64) -> usize {
    crate::bytes::uvint_size(value)
}

/// Appends `value` as a Cassandra unsigned vint (the crate's codec, [`crate::bytes::put_uvint`]).
pub fn put_unsigned_vint(out: &mut Vec<u8>, value: u64) {
    crate::bytes::put_uvint(out, value);
}

/// Appends `value` as a Cassandra signed (zig-zag) vint.
pub fn put_vint(out: &mut Vec<u8>, value: i64) {
    crate::bytes::put_vint(out, value);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}
pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

/// Java `DataOutput.writeUTF` for the ASCII strings the writer emits (class names, option keys).
pub fn put_java_utf(out: &mut Vec<u8>, s: &str) {
    // Modified UTF-8 equals UTF-8 for text without NUL or supplementary characters, which is all we write.
    put_u16(out, s.len() as u16);
    out.extend_from_slice(s.as_bytes());
}

/// `ByteBufferUtil.writeWithShortLength`.
pub fn put_short_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u16(out, b.len() as u16);
    out.extend_from_slice(b);
}

/// `ByteBufferUtil.writeWithLength` (int length).
pub fn put_int_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, b.len() as i32);
    out.extend_from_slice(b);
}

/// `ByteBufferUtil.writeWithVIntLength`.
pub fn put_vint_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_unsigned_vint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_vint_matches_cassandra_layout() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (0x7f, &[0x7f]),
            (0x80, &[0x80, 0x80]),
            (138, &[0x80, 0x8a]),
            (0x3fff, &[0xbf, 0xff]),
            (0x4000, &[0xc0, 0x40, 0x00]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            put_unsigned_vint(&mut out, *v);
            assert_eq!(&out[..], *want, "value {v:#x}");
            assert_eq!(unsigned_vint_size(*v), want.len());
        }
    }

    #[test]
    fn signed_vint_zigzags() {
        let mut out = Vec::new();
        put_vint(&mut out, -1);
        put_vint(&mut out, 1);
        put_vint(&mut out, -65);
        assert_eq!(out, vec![0x01, 0x02, 0x80, 0x81]);
    }
}
