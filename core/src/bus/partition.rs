//! Key → partition: Kafka's default partitioner (the Java client's `Utils.murmur2`, seed
//! `0x9747b28c`, `toPositive(hash) % partitions`), used by the NATS publisher so both buses put a key
//! on the same partition. librdkafka's `partitioner=murmur2_random` computes the same function.

/// Kafka's murmur2 hash of `data` (the Java client's `Utils.murmur2`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len();
    // Java works on an `int` length; keys are far below 2^31 bytes, and wrapping matches Java anyway.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // The Java switch falls through from 3 to 1, each byte as an unsigned value.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` partitions, as Kafka's default partitioner computes it
/// (`toPositive(murmur2(key)) % partitions`). `partitions` of 0 is treated as 1.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let positive = (murmur2(key) as u32) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Apache Kafka's `UtilsTest.testMurmur2` (Java signed ints).
    #[test]
    fn murmur2_matches_the_java_client_vectors() {
        let cases: [(&[u8], i32); 7] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
            (b"", 275_646_681),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn partition_is_the_positive_hash_modulo_the_count() {
        assert_eq!(partition_for(b"foobar", 50), 16);
        // -973932308 & 0x7fffffff = 1173551340; % 12 = 0
        assert_eq!(partition_for(b"21", 12), 1_173_551_340 % 12);
        assert_eq!(partition_for(b"anything", 1), 0);
        assert_eq!(partition_for(b"anything", 0), 0);
    }
}
