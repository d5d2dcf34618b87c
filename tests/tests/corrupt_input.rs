//! A corrupt SSTable reaches the operator with the file and the offset, through the types of the errors
//! (not their text): one flipped byte in a compressed chunk of a generated events table makes `funnel run`
//! exit 6 (input error) naming the Data.db and the chunk's offset, and makes `funnel schedule --once`
//! record an `input_error` attempt naming them.

mod schedule_support;

use std::process::Command;

use schedule_support::*;

/// The chunk offset and length in a checksum error message (`… chunk at offset N (length L) …`).
fn chunk_of(message: &str) -> Option<(u64, u64)> {
    let rest = message.split("chunk at offset ").nth(1)?;
    let (offset, rest) = rest.split_once(" (length ")?;
    let (length, _) = rest.split_once(')')?;
    Some((offset.parse().ok()?, length.parse().ok()?))
}

#[test]
fn a_flipped_byte_in_a_chunk_is_an_input_error_naming_the_file_and_offset() {
    let env = Env::new(400, 1);
    env.config_at(NOW, "");
    let events = sstables_of(&env.data, "events");
    let data_db = events[0]
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-Data.db"))
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&data_db).unwrap();
    assert!(bytes.len() > 100_000, "several chunks: {}", bytes.len());
    let flipped = (bytes.len() * 2 / 3) as u64;
    bytes[flipped as usize] ^= 0x01;
    std::fs::write(&data_db, &bytes).unwrap();
    let path = data_db.display().to_string();

    let out = Command::new(e2e_tests::funnel_bin())
        .args(["run", "--data"])
        .arg(&env.data)
        .arg("--funnels")
        .arg(&env.funnels)
        .arg("--facts")
        .arg(format!(
            "sqlite:{}",
            env.dir.path().join("run.db").display()
        ))
        .args(["--now", NOW, "--quiet"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), 6, "{err}");
    assert!(err.contains(&path), "names the file: {err}");
    let (offset, length) = chunk_of(&err).unwrap_or_else(|| panic!("names the chunk: {err}"));
    assert!(
        offset > 0 && offset <= flipped && flipped < offset + length + 4,
        "the chunk at {offset} (+{length} and its checksum) holds byte {flipped}: {err}"
    );

    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let attempt = &env.state()["attempts"][0];
    assert_eq!(attempt["outcome"], "input_error", "{attempt}");
    let recorded = attempt["error"].as_str().unwrap_or_default();
    assert!(recorded.contains(&path), "{recorded}");
    assert_eq!(chunk_of(recorded), Some((offset, length)), "{recorded}");
}
