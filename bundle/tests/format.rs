//! The bundle format end to end: what the creator writes, the reader accepts, standard tools can
//! open, and every way a damaged or forged bundle is refused.
use std::fs;
use std::path::Path;
use std::process::Command;

use bundle::craft::{assemble, entries_of, signature_entry, RawEntry};
use bundle::{
    create_bundle, hash_chunk, BundleError, BundleInput, BundleReader, CreateOptions, ErrorClass,
    ImageInput, Keyring, SeekTable, SigningKey,
};

/// Deterministic data that compresses about as well as a real filesystem image.
/// An input of one rootfs image at `path`.
fn rootfs_input(path: &Path) -> BundleInput {
    BundleInput {
        compatible: "acme-robot".into(),
        version: "1.2.0".parse().unwrap(),
        security_version: 0,
        images: vec![ImageInput {
            slot_class: "rootfs".into(),
            path: path.to_path_buf(),
            archive: false,
        }],
        firmware: vec![],
        hooks: None,
    }
}

fn image(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            if (i / 4096) % 3 == 0 {
                0
            } else {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 16) as u8 + b'a'
            }
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    key: SigningKey,
    keyring: Keyring,
    bundle: Vec<u8>,
    rootfs: Vec<u8>,
    app: Vec<u8>,
}

fn fixture() -> Fixture {
    fixture_with(&CreateOptions::default())
}

fn fixture_with(options: &CreateOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = image(3 * 1024 * 1024 + 12345, 1);
    let app = image(700_000, 2);
    fs::write(dir.path().join("rootfs.img"), &rootfs).unwrap();
    fs::write(dir.path().join("app.img"), &app).unwrap();
    let (key, _) = SigningKey::generate().unwrap();
    let input = BundleInput {
        compatible: "acme-robot".into(),
        version: "1.2.0".parse().unwrap(),
        security_version: 1,
        images: vec![
            ImageInput {
                slot_class: "rootfs".into(),
                path: dir.path().join("rootfs.img"),
                archive: false,
            },
            ImageInput {
                slot_class: "app".into(),
                path: dir.path().join("app.img"),
                archive: false,
            },
        ],
        firmware: vec![],
        hooks: None,
    };
    let out = dir.path().join("b.zst");
    create_bundle(&input, &[&key], &out, options).unwrap();
    let keyring = Keyring::from_keys(vec![key.public_key()], Path::new("test")).unwrap();
    Fixture {
        bundle: fs::read(&out).unwrap(),
        _dir: dir,
        key,
        keyring,
        rootfs,
        app,
    }
}

/// Reads a whole bundle the way an installer does; returns each component's bytes.
fn read_all(bundle: &[u8], keyring: &Keyring) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    let mut reader = BundleReader::open(bundle, keyring)?;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(chunk) = reader.next_chunk(Vec::new())? {
        let chunk = chunk.verify().map_err(|(e, _)| e)?;
        if out.last().map(|(n, _)| n.as_str()) != Some(chunk.component()) {
            out.push((chunk.component().to_string(), Vec::new()));
        }
        out.last_mut().unwrap().1.extend_from_slice(chunk.data());
    }
    reader.finish()?;
    Ok(out)
}

#[test]
fn round_trip_gives_back_every_image_byte_for_byte() {
    let f = fixture();
    let got = read_all(&f.bundle, &f.keyring).unwrap();
    assert_eq!(
        got,
        vec![
            ("rootfs".into(), f.rootfs.clone()),
            ("app".into(), f.app.clone())
        ]
    );
    let reader = BundleReader::open(&f.bundle[..], &f.keyring).unwrap();
    assert_eq!(reader.signer(), Some(f.key.public_key().id()));
    let manifest = reader.manifest();
    assert_eq!(manifest.components[0].sha256, hash_chunk(&f.rootfs));
    assert_eq!(manifest.components[0].chunks.len(), 4);
    assert_eq!(manifest.security_version, 1);
}

#[test]
fn format_2_indexes_every_block_and_reads_like_format_1() {
    let f = fixture_with(&CreateOptions::for_format(bundle::FORMAT_WITH_BLOCKS));
    let got = read_all(&f.bundle, &f.keyring).unwrap();
    assert_eq!(got[0].1, f.rootfs);
    assert_eq!(got[1].1, f.app);
    let reader = BundleReader::open(&f.bundle[..], &f.keyring).unwrap();
    let manifest = reader.manifest();
    assert_eq!(manifest.format, 2);
    assert_eq!(manifest.chunk_size, 64 << 10);
    for (component, image) in manifest.components.iter().zip([&f.rootfs, &f.app]) {
        let expected: Vec<u64> = image.chunks(4096).map(bundle::block_key).collect();
        assert_eq!(component.blocks.as_ref(), Some(&expected));
        assert_eq!(component.chunks.len(), image.len().div_ceil(64 << 10));
    }
    // Standard tools still open it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.zst");
    fs::write(&path, &f.bundle).unwrap();
    let extract = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc {} | tar -x -C {}",
            path.display(),
            dir.path().display()
        ))
        .status()
        .unwrap();
    assert!(extract.success());
    assert_eq!(fs::read(dir.path().join("app.img")).unwrap(), f.app);
}

#[test]
fn creation_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("r.img"), image(2_000_000, 9)).unwrap();
    let (key, _) = SigningKey::generate().unwrap();
    let input = rootfs_input(&dir.path().join("r.img"));
    let (a, b) = (dir.path().join("a.zst"), dir.path().join("b.zst"));
    create_bundle(
        &input,
        &[&key],
        &a,
        &CreateOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    create_bundle(
        &input,
        &[&key],
        &b,
        &CreateOptions {
            threads: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
}

#[test]
fn a_sparse_image_makes_the_same_bundle_as_its_zeros_written_out() {
    // Holes (skipped without reading) of whole frames, of whole chunks inside a frame with data,
    // and at the end; in both formats.
    let dir = tempfile::tempdir().unwrap();
    let size: u64 = 13 << 20;
    let data = image(300_000, 7);
    let at = [0u64, 5 << 20, (9 << 20) + 4096];
    let dense = dir.path().join("dense.img");
    let mut bytes = vec![0u8; size as usize];
    for offset in at {
        bytes[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
    }
    fs::write(&dense, &bytes).unwrap();
    let sparse = dir.path().join("sparse.img");
    {
        use std::os::unix::fs::FileExt;
        let file = fs::File::create(&sparse).unwrap();
        file.set_len(size).unwrap();
        for offset in at {
            file.write_all_at(&data, offset).unwrap();
        }
    }
    let (key, _) = SigningKey::generate().unwrap();
    for format in [1, bundle::FORMAT_WITH_BLOCKS] {
        let bundle_of = |path: &Path, name: &str| {
            let input = rootfs_input(path);
            let out = dir.path().join(name);
            create_bundle(&input, &[&key], &out, &CreateOptions::for_format(format)).unwrap();
            fs::read(out).unwrap()
        };
        let from_sparse = bundle_of(&sparse, "sparse.zst");
        assert_eq!(
            from_sparse,
            bundle_of(&dense, "dense.zst"),
            "format {format}"
        );
        // And it holds the image.
        let keyring = Keyring::from_keys(vec![key.public_key()], Path::new("test")).unwrap();
        let images = read_all(&from_sparse, &keyring).unwrap();
        assert_eq!(images[0].1, bytes);
    }
}

#[test]
fn standard_zstd_and_tar_list_and_extract_the_bundle() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.zst");
    fs::write(&path, &f.bundle).unwrap();
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc {} | tar -t", path.display()))
        .output()
        .expect("zstd and tar are installed");
    assert!(listing.status.success(), "{listing:?}");
    let names = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(names, "manifest.toml\nmanifest.sig\nrootfs.img\napp.img\n");
    let extract = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc {} | tar -x -C {}",
            path.display(),
            dir.path().display()
        ))
        .status()
        .unwrap();
    assert!(extract.success());
    assert_eq!(fs::read(dir.path().join("rootfs.img")).unwrap(), f.rootfs);
    let manifest = fs::read_to_string(dir.path().join("manifest.toml")).unwrap();
    assert!(
        manifest.contains("compatible = \"acme-robot\""),
        "{manifest}"
    );
}

#[test]
fn seek_table_locates_every_frame() {
    // Format 1: up to four chunks per frame; the rootfs (3 MiB and a bit) is the frame after
    // manifest, signature and the rootfs header.
    let f = fixture();
    let table = SeekTable::from_bundle_tail(&f.bundle).unwrap();
    let (offset, entry) = table.offsets().nth(3).unwrap();
    let frame = &f.bundle[offset as usize..(offset + u64::from(entry.compressed)) as usize];
    assert_eq!(zstd::bulk::decompress(frame, 4 << 20).unwrap(), f.rootfs);
    let total: u64 = table.entries.iter().map(|e| u64::from(e.compressed)).sum();
    assert_eq!(total as usize + table.encode().len(), f.bundle.len());

    // Format 2: every chunk is a frame of its own, which a device can fetch alone.
    let f = fixture_with(&CreateOptions::for_format(bundle::FORMAT_WITH_BLOCKS));
    let table = SeekTable::from_bundle_tail(&f.bundle).unwrap();
    for (k, (offset, entry)) in table.offsets().skip(3).take(3).enumerate() {
        let frame = &f.bundle[offset as usize..(offset + u64::from(entry.compressed)) as usize];
        let chunk = zstd::bulk::decompress(frame, 64 << 10).unwrap();
        assert_eq!(chunk, f.rootfs[k << 16..(k + 1) << 16]);
    }
}

#[test]
fn frame_sizes_that_split_chunks_or_exceed_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rootfs.img"), image(100_000, 1)).unwrap();
    let (key, _) = SigningKey::generate().unwrap();
    let input = rootfs_input(&dir.path().join("rootfs.img"));
    let out = dir.path().join("b.zst");
    let cases = [
        (
            CreateOptions {
                frame_size: 3 << 19,
                ..Default::default()
            },
            "must hold whole chunks",
        ),
        (
            CreateOptions {
                frame_size: 8 << 20,
                ..Default::default()
            },
            "must hold whole chunks",
        ),
        (
            CreateOptions {
                frame_size: 128 << 10,
                ..CreateOptions::for_format(bundle::FORMAT_WITH_BLOCKS)
            },
            "format 2 needs a frame per chunk",
        ),
    ];
    for (options, message) in cases {
        let e = create_bundle(&input, &[&key], &out, &options).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "something was written"
        );
    }
}

fn assert_refused(bundle: &[u8], keyring: &Keyring, class: ErrorClass, message: &str) {
    match read_all(bundle, keyring) {
        Ok(_) => panic!("bundle accepted, expected '{message}'"),
        Err(e) => {
            assert_eq!(e.class(), class, "{e}");
            assert!(
                e.to_string().contains(message),
                "'{e}' does not contain '{message}'"
            );
        }
    }
}

#[test]
fn truncation_at_every_frame_boundary_and_inside_every_frame_is_refused() {
    let f = fixture();
    let table = SeekTable::from_bundle_tail(&f.bundle).unwrap();
    let mut cuts = vec![
        0,
        3,
        f.bundle.len() - 1,
        f.bundle.len() - table.encode().len(),
    ];
    for (offset, entry) in table.offsets() {
        cuts.extend(
            [offset, offset + 1, offset + u64::from(entry.compressed) / 2].map(|c| c as usize),
        );
    }
    for cut in cuts {
        match read_all(&f.bundle[..cut], &f.keyring) {
            Ok(_) => panic!("bundle cut at {cut} accepted"),
            Err(e) => assert!(
                e.class() == ErrorClass::BadBundle && e.to_string().contains("truncated"),
                "cut at {cut}: {e}"
            ),
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let f = fixture();
    let step = f.bundle.len() / 97;
    for at in (0..f.bundle.len())
        .step_by(step)
        .chain([f.bundle.len() - 1])
    {
        let mut bad = f.bundle.clone();
        bad[at] ^= 0x20;
        assert!(read_all(&bad, &f.keyring).is_err(), "flip at {at} accepted");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let f = fixture();
    let mut bad = f.bundle.clone();
    bad.push(0);
    assert_refused(
        &bad,
        &f.keyring,
        ErrorClass::BadBundle,
        "after the seek table",
    );
}

#[test]
fn a_bundle_signed_by_an_untrusted_key_is_refused() {
    let f = fixture();
    let (other, _) = SigningKey::generate().unwrap();
    let keyring = Keyring::from_keys(vec![other.public_key()], Path::new("k")).unwrap();
    assert_refused(
        &f.bundle,
        &keyring,
        ErrorClass::BadSignature,
        "signed by untrusted key",
    );
}

#[test]
fn a_manifest_edited_after_signing_is_refused_before_it_is_parsed() {
    let f = fixture();
    let mut entries = entries_of(&f.bundle);
    let text = String::from_utf8(entries[0].data.clone()).unwrap();
    entries[0].data = text.replace("acme-robot", "acme-robos").into_bytes();
    assert_refused(
        &assemble(&entries),
        &f.keyring,
        ErrorClass::BadSignature,
        "modified after it was signed",
    );
    entries[0].data = b"not toml at all [".to_vec();
    assert_refused(
        &assemble(&entries),
        &f.keyring,
        ErrorClass::BadSignature,
        "modified after it was signed",
    );
}

#[test]
fn a_signed_manifest_that_does_not_parse_is_refused() {
    let f = fixture();
    let mut entries = entries_of(&f.bundle);
    entries[0].data = b"compatible = [".to_vec();
    entries[1].data = signature_entry(&entries[0].data, &f.key);
    assert_refused(
        &assemble(&entries),
        &f.keyring,
        ErrorClass::BadBundle,
        "manifest is invalid",
    );
}

#[test]
fn unexpected_duplicate_oversized_and_traversing_entries_are_refused() {
    let f = fixture();
    let good = entries_of(&f.bundle);
    let with = |edit: &dyn Fn(&mut Vec<RawEntry>)| {
        let mut e = good.clone();
        edit(&mut e);
        assemble(&e)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            with(&|e| e.insert(0, RawEntry::new("README", "hi"))),
            "unexpected archive entry 'README' (expected 'manifest.toml')",
        ),
        (
            with(&|e| e.insert(1, e[0].clone())),
            "unexpected archive entry 'manifest.toml' (expected 'manifest.sig')",
        ),
        (
            with(&|e| e.insert(3, e[2].clone())),
            "unexpected archive entry 'rootfs.img' (expected 'app.img')",
        ),
        (
            with(&|e| e.push(RawEntry::new("extra.img", "x"))),
            "unexpected archive entry 'extra.img' (expected the end of the archive)",
        ),
        (
            with(&|e| e[2].name = "../rootfs.img".into()),
            "archive entry '../rootfs.img' has an unsafe path",
        ),
        (
            with(&|e| e[2].name = "etc/rootfs.img".into()),
            "archive entry 'etc/rootfs.img' has an unsafe path",
        ),
        (
            with(&|e| e[2].data.push(0)),
            "archive entry 'rootfs.img' is 3158074 bytes but the manifest says 3158073",
        ),
        (
            with(&|e| {
                e.pop();
            }),
            "truncated: the archive ends where 'app.img' should be",
        ),
        (
            with(&|e| e[1].data = vec![b'#'; 70_000]),
            "archive entry 'manifest.sig' is 70000 bytes, more than the 65536 allowed",
        ),
        (
            with(&|e| e[0].data = vec![b' '; (32 << 20) + 1]),
            "archive entry 'manifest.toml' is 33554433 bytes, more than the 33554432 allowed",
        ),
    ];
    for (bundle, message) in cases {
        match read_all(&bundle, &f.keyring) {
            Ok(_) => panic!("accepted, expected '{message}'"),
            Err(e) => assert!(
                e.to_string().contains(message),
                "'{e}' does not contain '{message}'"
            ),
        }
    }
}

#[test]
fn an_uncompressed_archive_is_not_mistaken_for_a_bundle() {
    let f = fixture();
    let mut archive = Vec::new();
    zstd::stream::copy_decode(&f.bundle[..], &mut archive).unwrap();
    assert_refused(
        &archive,
        &f.keyring,
        ErrorClass::BadBundle,
        "no zstd frame at byte 0",
    );
}
