//! A JSON number read as an f32, exactly as serde's path reads it, read in JSON's grammar
//! only. serde_json (without its `float_roundtrip` feature) makes an f64 of a number with a
//! fraction or an exponent, and an integer (`u64`, `i64`) of one without; serde then casts
//! either `as f32`. That is not always the f32 nearest to the decimal (an f64 within a hair
//! of a point halfway between two f32s rounds twice, and serde_json's f64 is not always the
//! nearest f64 either), but it is what the page reader must give: the same page as serde.
//!
//! Most numbers take the fast way: up to 19 significant digits as an integer, made an f64
//! and multiplied or divided once by the f64 nearest to a power of ten, then cast to f32
//! ([`below_one`] is that way in fewer steps, for the form of nearly every value of an
//! embedding: `-0.01234567`). These are serde_json's own operations on the same digits with
//! the same powers (its `f64_from_parts`), so the f64 is serde's, bit for bit. An integer
//! without fraction or exponent is where they part: serde casts it to f32 from the integer
//! (rounded once), the fast way from its f64 (rounded twice), which differ only when that f64
//! lies on a point halfway between two f32s. So a result whose low 29 bits (those an f32
//! drops) come within [`MARGIN`] ulps of the halfway pattern is not trusted: that number,
//! like one of more digits or with an exponent beyond the table, takes the slow way, read by
//! serde_json itself (`serde_json::from_slice::<f32>`, serde's path for one number).

/// The number at the start of `text`: its f32 and its length in bytes. `None` when the text
/// does not start with a JSON number, or its value is beyond f32's range (serde_json would
/// make that infinite or an error: the caller leaves the page to serde).
pub(crate) fn f32_prefix(text: &[u8]) -> Option<(f32, usize)> {
    if let Some(found) = below_one(text) {
        return Some(found);
    }
    let decimal = Decimal::scan(text)?;
    let value = match decimal.fast() {
        Some(value) => value,
        // serde_json refuses a number beyond f64's range: the caller leaves the page to it.
        None => serde_json::from_slice::<f32>(&text[..decimal.len]).ok()?,
    };
    value.is_finite().then_some((value, decimal.len))
}

/// A number of the form `-0.ddd` (sign optional) with 1 to 15 digits, the last ones not
/// followed by an exponent: read as [`Decimal::fast`] would read it (the digits, exact in an
/// f64, divided by an exact power of ten), with less to check on the way. `None` for any
/// other, or when the fast way cannot be sure of the result.
fn below_one(text: &[u8]) -> Option<(f32, usize)> {
    let negative = *text.first()? == b'-';
    let start = usize::from(negative) + 2;
    if text.get(start - 2..start)? != b"0." {
        return None;
    }
    let mut at = start;
    let mut mantissa = 0;
    if let Some(eight) = text.get(at..at + 8).and_then(eight_digits) {
        mantissa = eight;
        at += 8;
    }
    while let Some(&digit @ b'0'..=b'9') = text.get(at) {
        mantissa = mantissa * 10 + u64::from(digit - b'0');
        at += 1;
        if at - start > MAX_EXACT_DIGITS {
            return None;
        }
    }
    if at == start || mantissa == 0 || matches!(text.get(at), Some(b'e' | b'E')) {
        return None;
    }
    // At least 1e-15: far inside f32's normal range.
    let value = mantissa as f64 / POW10[at - start];
    if near_halfway(value) {
        return None;
    }
    let value = value as f32;
    Some((if negative { -value } else { value }, at))
}

/// Digits that always make an integer exact in an f64 (10^15 < 2^53).
const MAX_EXACT_DIGITS: usize = 15;

/// The f64 `value` is too close to a point halfway between two f32s for its rounding to f32
/// to be trusted.
fn near_halfway(value: f64) -> bool {
    (value.to_bits() & DROPPED).abs_diff(HALFWAY) <= MARGIN
}

/// The most significant digits the mantissa holds: 10^19 - 1 fits a u64.
const MAX_DIGITS: u32 = 19;

/// How close (in f64 ulps) to an f32 rounding boundary the fast result may not come. An
/// integer's f64 is within half an ulp of it, so only one on the boundary needs the slow way;
/// the margin is wider, for room to spare (a number sent the slow way reads the same).
const MARGIN: u64 = 8;

/// The 29 low bits of an f64's mantissa, which an f32 does not keep, and their value at a
/// point halfway between two f32s.
const DROPPED: u64 = (1 << 29) - 1;
const HALFWAY: u64 = 1 << 28;

/// A number's text, taken apart: `mantissa` × 10^`exponent`, negative or not.
#[derive(Debug, Default)]
struct Decimal {
    negative: bool,
    mantissa: u64,
    /// Digits in the mantissa (leading zeros read one at a time are not counted).
    digits: u32,
    /// Some digits did not fit in the mantissa: only the slow way is exact.
    truncated: bool,
    exponent: i64,
    /// The length of the number's text.
    len: usize,
}

impl Decimal {
    /// The JSON number at the start of `text`: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?, or `None` (`+1`, `01`, `.5`, `1.`, `1e`, `NaN`, ...).
    fn scan(text: &[u8]) -> Option<Decimal> {
        let mut decimal = Decimal::default();
        let mut at = 0;
        if text.first() == Some(&b'-') {
            decimal.negative = true;
            at = 1;
        }
        at = match text.get(at)? {
            // A leading zero stands alone.
            b'0' if matches!(text.get(at + 1), Some(b'0'..=b'9')) => return None,
            b'0' => at + 1,
            b'1'..=b'9' => decimal.read_digits(text, at),
            _ => return None,
        };
        if text.get(at) == Some(&b'.') {
            let end = decimal.read_digits(text, at + 1);
            if end == at + 1 {
                return None;
            }
            decimal.exponent = -((end - at - 1) as i64);
            at = end;
        }
        if let Some(b'e' | b'E') = text.get(at) {
            at = decimal.read_exponent(text, at + 1)?;
        }
        decimal.len = at;
        Some(decimal)
    }

    /// Reads the digits from `at` on into the mantissa (eight at a time while they fit);
    /// returns where they end.
    fn read_digits(&mut self, text: &[u8], mut at: usize) -> usize {
        while self.digits + 8 <= MAX_DIGITS {
            match text.get(at..at + 8).and_then(eight_digits) {
                Some(eight) => {
                    self.mantissa = self.mantissa * 100_000_000 + eight;
                    self.digits += 8;
                    at += 8;
                }
                None => break,
            }
        }
        while let Some(&digit @ b'0'..=b'9') = text.get(at) {
            if self.digits < MAX_DIGITS {
                self.mantissa = self.mantissa * 10 + u64::from(digit - b'0');
                // Leading zeros (of `0.000123`) are not significant.
                self.digits += u32::from(self.mantissa != 0);
            } else {
                self.truncated = true;
            }
            at += 1;
        }
        at
    }

    /// Reads the exponent's sign and digits from `at` on (after the `e`); returns where they
    /// end. A huge exponent is kept huge (capped): only the slow way reads it.
    fn read_exponent(&mut self, text: &[u8], mut at: usize) -> Option<usize> {
        let negative = text.get(at) == Some(&b'-');
        if let Some(b'-' | b'+') = text.get(at) {
            at += 1;
        }
        let start = at;
        let mut exponent: i64 = 0;
        while let Some(&digit @ b'0'..=b'9') = text.get(at) {
            exponent = (exponent * 10 + i64::from(digit - b'0')).min(1_000_000);
            at += 1;
        }
        if at == start {
            return None;
        }
        self.exponent += if negative { -exponent } else { exponent };
        Some(at)
    }

    /// serde's f32 by the fast way, or `None` when it cannot be sure of it.
    fn fast(&self) -> Option<f32> {
        if self.truncated {
            return None;
        }
        if self.mantissa == 0 {
            return Some(if self.negative { -0.0 } else { 0.0 });
        }
        let power = *POW10.get(usize::try_from(self.exponent.unsigned_abs()).ok()?)?;
        let mantissa = self.mantissa as f64;
        let value = match self.exponent < 0 {
            true => mantissa / power,
            false => mantissa * power,
        };
        // Outside f32's normal range the f32 keeps fewer bits (or none): the slow way.
        if !(f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&value) {
            return None;
        }
        if near_halfway(value) {
            return None;
        }
        let value = value as f32;
        Some(if self.negative { -value } else { value })
    }
}

/// The value of eight ASCII digits (`None` if any byte is not one), in a few integer
/// operations rather than eight multiplications (as Rust's own float parser does).
fn eight_digits(bytes: &[u8]) -> Option<u64> {
    let word = u64::from_le_bytes(bytes.try_into().ok()?);
    // Every byte is 0x30..=0x39: adding 0x46 keeps it under 0x80, subtracting 0x30 too.
    let high_bits = (word.wrapping_add(0x4646_4646_4646_4646)
        | word.wrapping_sub(0x3030_3030_3030_3030))
        & 0x8080_8080_8080_8080;
    if high_bits != 0 {
        return None;
    }
    let mut value = word - 0x3030_3030_3030_3030;
    // Pairs of digits, then fours, then the eight (the first byte is the most significant).
    value = value.wrapping_mul(10).wrapping_add(value >> 8);
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    value = (value & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((value >> 16) & MASK).wrapping_mul(MUL2))
        >> 32;
    Some(value & 0xffff_ffff)
}

/// 10^0 to 10^64 as f64, each the nearest f64 to the power (exact up to 10^22): enough for
/// 19 digits anywhere in f32's normal range.
#[rustfmt::skip]
const POW10: [f64; 65] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
    1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
    1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49,
    1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59,
    1e60, 1e61, 1e62, 1e63, 1e64,
];
