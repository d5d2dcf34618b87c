//! A bounds-checked big-endian cursor over a byte slice, with Cassandra's variable-length integers
//! (`utils/vint/VIntCoding.java`). Running past the end is a [`Short`] error that callers turn into a
//! corrupt-file error naming the file and offset, or into a request for more bytes.

/// The cursor ran out of bytes: a read of `needed` bytes starting at `at` (relative to the slice start)
/// went past its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    pub at: usize,
    pub needed: usize,
}

pub type ShortResult<T> = std::result::Result<T, Short>;

/// Big-endian reader over a borrowed slice. Cheap to copy; reads borrow from the underlying slice.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    #[inline(always)]
    fn short(&self, needed: usize) -> Short {
        Short {
            at: self.pos,
            needed,
        }
    }

    #[inline(always)]
    pub fn take(&mut self, n: usize) -> ShortResult<&'a [u8]> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.short(n)),
        }
    }

    #[inline(always)]
    pub fn skip(&mut self, n: usize) -> ShortResult<()> {
        if n > self.remaining() {
            return Err(self.short(n));
        }
        self.pos += n;
        Ok(())
    }

    #[inline(always)]
    pub fn u8(&mut self) -> ShortResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.short(1)),
        }
    }

    #[inline(always)]
    pub fn u16(&mut self) -> ShortResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    pub fn u32(&mut self) -> ShortResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn i32(&mut self) -> ShortResult<i32> {
        self.u32().map(|v| v as i32)
    }

    #[inline]
    pub fn u64(&mut self) -> ShortResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    #[inline]
    pub fn i64(&mut self) -> ShortResult<i64> {
        self.u64().map(|v| v as i64)
    }

    pub fn f64(&mut self) -> ShortResult<f64> {
        self.u64().map(f64::from_bits)
    }

    /// Java `DataOutput.writeUTF`: u16 length then (modified) UTF-8 bytes.
    pub fn utf(&mut self) -> ShortResult<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// Cassandra unsigned vint: the number of leading one bits of the first byte is the count of extra
    /// bytes; the rest of the first byte and the extra bytes are the big-endian value.
    #[inline(always)]
    pub fn uvint(&mut self) -> ShortResult<u64> {
        let first = self.u8()?;
        if first & 0x80 == 0 {
            return Ok(first as u64);
        }
        let extra = first.leading_ones() as usize;
        // Fast path: with 8 bytes at hand, the extra bytes are the top of one big-endian word.
        if extra < 8 {
            if let Some(w) = self.buf.get(self.pos..self.pos + 8) {
                let mut a = [0u8; 8];
                a.copy_from_slice(w);
                let tail = u64::from_be_bytes(a) >> (64 - 8 * extra);
                self.pos += extra;
                return Ok((((first & (0xff >> extra)) as u64) << (8 * extra)) | tail);
            }
        }
        let bytes = self.take(extra)?;
        let mut value = if extra >= 8 {
            0
        } else {
            (first & (0xff >> extra)) as u64
        };
        for &b in bytes {
            value = (value << 8) | b as u64;
        }
        Ok(value)
    }

    /// Skips an unsigned vint (its first byte's leading ones count the bytes that follow).
    #[inline(always)]
    pub fn skip_uvint(&mut self) -> ShortResult<()> {
        let first = self.u8()?;
        self.skip(first.leading_ones() as usize)
    }

    /// Cassandra signed vint: zig-zag encoded unsigned vint.
    #[inline]
    pub fn vint(&mut self) -> ShortResult<i64> {
        let v = self.uvint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Unsigned vint that must fit a `usize` length (sanity-bounded by what is left in the buffer
    /// only by the caller's subsequent `take`).
    #[inline(always)]
    pub fn uvint_len(&mut self) -> ShortResult<usize> {
        let v = self.uvint()?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }
}

/// Appends `value` as a Cassandra unsigned vint.
pub fn put_uvint(out: &mut Vec<u8>, value: u64) {
    let bits = 64 - value.leading_zeros() as usize;
    // Number of extra bytes: each extra byte adds 7 bits of capacity to the 7 of the first byte.
    let extra = if bits <= 7 { 0 } else { (bits - 7).div_ceil(7) }.min(8);
    if extra == 0 {
        out.push(value as u8);
        return;
    }
    if extra == 8 {
        out.push(0xff);
        out.extend_from_slice(&value.to_be_bytes());
        return;
    }
    let mut buf = [0u8; 9];
    let be = value.to_be_bytes();
    buf[9 - (extra + 1)..].copy_from_slice(&be[8 - (extra + 1)..]);
    let first = &mut buf[9 - (extra + 1)];
    *first |= !(0xffu8 >> extra);
    out.extend_from_slice(&buf[9 - (extra + 1)..]);
}

/// Encoded length of `value` as an unsigned vint.
pub fn uvint_size(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    if bits <= 7 {
        1
    } else {
        1 + (bits - 7).div_ceil(7).min(8)
    }
}

/// Appends `value` as a Cassandra signed (zig-zag) vint.
pub fn put_vint(out: &mut Vec<u8>, value: i64) {
    put_uvint(out, ((value << 1) ^ (value >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from VIntCoding's layout: 7 bits in one byte, 14 in two, …
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x80]),
            (255, &[0x80, 0xff]),
            (16383, &[0xbf, 0xff]),
            (16384, &[0xc0, 0x40, 0x00]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, enc) in cases {
            let mut out = Vec::new();
            put_uvint(&mut out, *v);
            assert_eq!(&out, enc, "encoding {v}");
            assert_eq!(Cursor::new(enc).uvint().unwrap(), *v);
            assert_eq!(uvint_size(*v), enc.len());
        }
    }

    #[test]
    fn short_reads_report_position() {
        let mut c = Cursor::new(&[0xc0, 0x40]);
        let err = c.uvint().unwrap_err();
        assert_eq!(err.at, 1);
    }

    proptest! {
        #[test]
        fn uvint_round_trips(v in any::<u64>()) {
            let mut out = Vec::new();
            put_uvint(&mut out, v);
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.uvint().unwrap(), v);
            prop_assert!(c.is_empty());
        }

        #[test]
        fn uvint_reads_the_same_with_bytes_after_it(v in any::<u64>(), pad in 0usize..12, fill in any::<u8>()) {
            // Short buffers take the byte loop, long ones the one-word fast path: both must agree.
            let mut out = Vec::new();
            put_uvint(&mut out, v);
            let n = out.len();
            out.extend(std::iter::repeat_n(fill, pad));
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.uvint().unwrap(), v);
            prop_assert_eq!(c.pos(), n);
        }

        #[test]
        fn skip_uvint_moves_as_far_as_uvint_reads(v in any::<u64>(), cut in 0usize..10) {
            let mut out = Vec::new();
            put_uvint(&mut out, v);
            out.extend_from_slice(&[0x55; 3]);
            let (mut read, mut skipped) = (Cursor::new(&out), Cursor::new(&out));
            prop_assert_eq!(read.uvint().map(|_| ()), skipped.skip_uvint());
            prop_assert_eq!(read.pos(), skipped.pos());
            // Cut short, both fail at the same place, needing as much.
            let short = &out[..cut.min(uvint_size(v) - 1)];
            let (r, s) = (Cursor::new(short).uvint().unwrap_err(), Cursor::new(short).skip_uvint().unwrap_err());
            prop_assert_eq!((r.at, r.needed), (s.at, s.needed));
        }

        #[test]
        fn vint_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            put_vint(&mut out, v);
            prop_assert_eq!(Cursor::new(&out).vint().unwrap(), v);
        }
    }
}
