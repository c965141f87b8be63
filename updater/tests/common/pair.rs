//! Two releases of an image that share most content at other places, as file systems do.
const BLOCK: usize = 4096;

/// A block of letters, different for every seed: compresses like binaries do, and is found only
/// where it was put.
pub fn block(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..BLOCK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'a' + (state % 16) as u8
        })
        .collect()
}

/// Two releases of an 8 MiB image: v2 holds v1's blocks in other places (runs of 37 blocks in
/// reverse order, so no 64 KiB chunk of v2 is one of v1) and 40 blocks that v1 lacks.
pub fn pair() -> (Vec<u8>, Vec<u8>) {
    let blocks = 2048u64;
    let v1: Vec<u8> = (0..blocks).flat_map(block).collect();
    let runs: Vec<Vec<u64>> = (0..blocks)
        .collect::<Vec<_>>()
        .chunks(37)
        .map(<[u64]>::to_vec)
        .rev()
        .collect();
    let mut order: Vec<u64> = runs.concat();
    for i in 0..40 {
        order[i * 50 + 7] = blocks + i as u64;
    }
    let v2 = order.into_iter().flat_map(block).collect();
    (v1, v2)
}
