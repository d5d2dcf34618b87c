//! The start-up CPU check. On x86-64 the workspace is built for `x86-64-v3` (`.cargo/config.toml`:
//! AVX2, BMI1/2, FMA, LZCNT, MOVBE — every x86-64 server CPU since Haswell and Zen), which makes
//! `funnel run` 3–5% faster. On an older CPU such a binary would die of SIGILL somewhere in a scan;
//! [`check`] says what is missing before anything runs, and how to build for it.

// (Other builds check nothing; the decoding of the bits is still tested.)
#![cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "avx2")),
    allow(dead_code)
)]

/// The CPUID words (and the OS's XCR0) the x86-64-v3 features are read from.
#[derive(Debug, Clone, Copy, Default)]
struct CpuidBits {
    /// Leaf 1, ECX: FMA (12), MOVBE (22), OSXSAVE (27), AVX (28), F16C (29).
    leaf1_ecx: u32,
    /// Leaf 7 subleaf 0, EBX: BMI1 (3), AVX2 (5), BMI2 (8).
    leaf7_ebx: u32,
    /// Leaf 0x8000_0001, ECX: LZCNT (5).
    ext1_ecx: u32,
    /// XCR0: the OS saves the SSE (1) and AVX (2) registers.
    xcr0: u64,
}

/// The x86-64-v3 features `bits` lacks.
fn missing(bits: &CpuidBits) -> Vec<&'static str> {
    let on = |word: u32, bit: u32| word & (1 << bit) != 0;
    let checks = [
        ("AVX", on(bits.leaf1_ecx, 28)),
        ("AVX2", on(bits.leaf7_ebx, 5)),
        ("BMI1", on(bits.leaf7_ebx, 3)),
        ("BMI2", on(bits.leaf7_ebx, 8)),
        ("F16C", on(bits.leaf1_ecx, 29)),
        ("FMA", on(bits.leaf1_ecx, 12)),
        ("LZCNT", on(bits.ext1_ecx, 5)),
        ("MOVBE", on(bits.leaf1_ecx, 22)),
        (
            "AVX state saved by the OS (OSXSAVE, XCR0)",
            on(bits.leaf1_ecx, 27) && bits.xcr0 & 0b110 == 0b110,
        ),
    ];
    checks
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect()
}

/// Reads this CPU's bits (only in x86-64-v3 builds, where `xgetbv` may be called once OSXSAVE is set).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn read() -> CpuidBits {
    use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    let max = __cpuid(0).eax;
    let max_ext = __cpuid(0x8000_0000).eax;
    let leaf1_ecx = if max >= 1 { __cpuid(1).ecx } else { 0 };
    let xcr0 = if leaf1_ecx & (1 << 27) != 0 {
        // SAFETY: OSXSAVE is set, so XGETBV is enabled; XCR0 (index 0) always exists.
        unsafe { _xgetbv(0) }
    } else {
        0
    };
    CpuidBits {
        leaf1_ecx,
        leaf7_ebx: if max >= 7 { __cpuid_count(7, 0).ebx } else { 0 },
        ext1_ecx: if max_ext >= 0x8000_0001 {
            __cpuid(0x8000_0001).ecx
        } else {
            0
        },
        xcr0,
    }
}

/// Fails with what this CPU lacks when the binary was built for x86-64-v3 and the CPU is older.
pub fn check() -> Result<(), String> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let lacks = missing(&read());
        if !lacks.is_empty() {
            return Err(format!(
                "this funnel binary was built for x86-64-v3 CPUs (Haswell, Zen or newer) and this CPU \
                 lacks {}; rebuild it for this CPU with RUSTFLAGS='-C target-cpu=native' cargo build --release",
                lacks.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every x86-64-v3 feature, as CPUID reports it on a Haswell or later CPU.
    const V3: CpuidBits = CpuidBits {
        leaf1_ecx: (1 << 12) | (1 << 22) | (1 << 27) | (1 << 28) | (1 << 29),
        leaf7_ebx: (1 << 3) | (1 << 5) | (1 << 8),
        ext1_ecx: 1 << 5,
        xcr0: 0b111,
    };

    #[test]
    fn a_v3_cpu_lacks_nothing() {
        assert!(missing(&V3).is_empty());
    }

    #[test]
    fn an_older_cpu_is_told_what_it_lacks() {
        // A Sandy Bridge: AVX but no AVX2, BMI, FMA, F16C, LZCNT or MOVBE.
        let sandy = CpuidBits {
            leaf1_ecx: (1 << 27) | (1 << 28),
            leaf7_ebx: 0,
            ext1_ecx: 0,
            xcr0: 0b111,
        };
        assert_eq!(
            missing(&sandy),
            ["AVX2", "BMI1", "BMI2", "F16C", "FMA", "LZCNT", "MOVBE"]
        );
        // A v3 CPU under an OS that does not save the AVX registers.
        let no_os = CpuidBits { xcr0: 0b011, ..V3 };
        assert_eq!(
            missing(&no_os),
            ["AVX state saved by the OS (OSXSAVE, XCR0)"]
        );
    }

    /// (Only in x86-64-v3 builds, the ones that read the CPU: elsewhere `check` has nothing to check.)
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn the_machine_running_the_tests_has_what_it_reads() {
        // The tests themselves run the x86-64-v3 code, so this CPU has every feature: a bit read from
        // the wrong leaf or word shows up here as a missing feature.
        assert_eq!(missing(&read()), Vec::<&str>::new());
        assert_eq!(check(), Ok(()));
    }
}
