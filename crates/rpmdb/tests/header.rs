//! The bounded header parser: round trips through a header writer, arbitrary bytes, and
//! hand-made hostile headers (truncated, oversized counts, corrupted, self-referencing).

#[path = "common/writer.rs"]
mod writer;

use keyhole_rpmdb::{
    DigestAlgo, Error, FileFlags, FileState, Header, Package, PackageFile, VerifyFlags, tag,
};
use proptest::prelude::*;
use writer::{Value, package_header, write_header};

fn header_error(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::Header { reason, .. }) => reason,
        other => panic!("expected a header error, got {other:?}"),
    }
}

fn sample() -> Package {
    let file = |dir: u32, name: &[u8], mode: u16| PackageFile {
        dir,
        basename: name.to_vec(),
        mode,
        user: b"root".to_vec(),
        group: b"wheel".to_vec(),
        size: 12,
        mtime: 1_700_000_000,
        rdev: 0,
        digest: (mode & 0o170000 == 0o100000).then(|| vec![0xab; 32]),
        link_target: Vec::new(),
        flags: FileFlags(0),
        state: FileState::Normal,
        verify: VerifyFlags::ALL,
    };
    Package {
        hnum: None,
        name: "bash".into(),
        epoch: Some(1),
        version: "5.1.8".into(),
        release: "9.el9".into(),
        arch: Some("x86_64".into()),
        vendor: Some("Red Hat, Inc.".into()),
        install_time: Some(1_720_000_000),
        digest_algo: DigestAlgo::Sha256,
        dirnames: vec![b"/etc/".to_vec(), b"/usr/bin/".to_vec()],
        files: vec![
            PackageFile {
                flags: FileFlags(FileFlags::CONFIG | FileFlags::NOREPLACE),
                ..file(0, b"bashrc", 0o100644)
            },
            file(1, b"bash", 0o100755),
            PackageFile {
                link_target: b"bash".to_vec(),
                ..file(1, b"sh", 0o120777)
            },
        ],
    }
}

#[test]
fn a_written_package_reads_back_the_same() {
    let p = sample();
    let back = Package::from_header(&package_header(&p)).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.path(&back.files[0]), b"/etc/bashrc");
    assert_eq!(back.nevra(), "bash-1:5.1.8-9.el9.x86_64");
    assert_eq!(back.evr(), "1:5.1.8-9.el9");
    assert!(back.files[0].flags.is_config());
}

#[test]
fn without_a_digest_algorithm_tag_digests_are_md5() {
    let mut p = sample();
    p.digest_algo = DigestAlgo::Md5;
    for f in &mut p.files {
        f.digest = f.digest.as_ref().map(|_| vec![0x11; 16]);
    }
    let blob = package_header(&p);
    let h = Header::parse(&blob).unwrap();
    assert!(h.tags().all(|(t, _)| t != tag::FILEDIGESTALGO));
    assert_eq!(
        Package::from_header(&blob).unwrap().digest_algo,
        DigestAlgo::Md5
    );
    // A SHA-256-long digest under MD5 is a lie, not a digest.
    p.files[1].digest = Some(vec![0x11; 32]);
    let reason = header_error(Package::from_header(&package_header(&p)));
    assert!(reason.contains("is not Md5 in hex"), "{reason}");
}

#[test]
fn a_dribble_entry_replaces_the_region_entry() {
    let entries = vec![
        (tag::NAME, Value::Str(b"old".to_vec())),
        (tag::VERSION, Value::Str(b"1".to_vec())),
        (tag::RELEASE, Value::Str(b"1".to_vec())),
        (tag::NAME, Value::Str(b"new".to_vec())),
    ];
    let p = Package::from_header(&write_header(&entries, 3)).unwrap();
    assert_eq!(p.name, "new");
}

#[test]
fn files_outside_the_header_are_refused() {
    let mut p = sample();
    p.files[2].dir = 2;
    let reason = header_error(Package::from_header(&package_header(&p)));
    assert!(reason.contains("directory index 2 of 2"), "{reason}");
}

#[test]
fn file_arrays_of_different_lengths_are_refused() {
    let p = sample();
    let mut entries = writer::package_entries(&p);
    for (t, v) in &mut entries {
        if *t == tag::FILEMODES {
            *v = Value::Int16(vec![0o100644; 2]);
        }
    }
    let reason = header_error(Package::from_header(&write_header(&entries, 5)));
    assert_eq!(reason, "2 modes for 3 files");
}

#[test]
fn a_missing_name_or_a_non_utf8_version_is_refused() {
    let entries = vec![
        (tag::VERSION, Value::Str(b"1".to_vec())),
        (tag::RELEASE, Value::Str(b"1".to_vec())),
    ];
    assert_eq!(
        header_error(Package::from_header(&write_header(&entries, 2))),
        "no name"
    );
    let entries = vec![
        (tag::NAME, Value::Str(b"x".to_vec())),
        (tag::VERSION, Value::Str(b"\xff".to_vec())),
        (tag::RELEASE, Value::Str(b"1".to_vec())),
    ];
    let reason = header_error(Package::from_header(&write_header(&entries, 2)));
    assert_eq!(reason, "the version is not UTF-8");
}

/// Overwrites the big-endian u32 at `at`.
fn put(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn truncated_and_padded_headers_are_refused() {
    let blob = package_header(&sample());
    for cut in [0, 7, 8, 100, blob.len() - 1] {
        let reason = header_error(Header::parse(&blob[..cut]));
        assert!(
            reason.contains("shorter than") || reason.contains("its sizes say"),
            "{cut}: {reason}"
        );
    }
    let mut long = blob.clone();
    long.push(0);
    assert!(header_error(Header::parse(&long)).contains("its sizes say"));
}

#[test]
fn oversized_counts_and_sizes_are_refused_before_allocating() {
    let blob = package_header(&sample());
    // Index count and data length beyond rpm's own maxima: refused before anything is read.
    let mut b = blob.clone();
    put(&mut b, 0, 0x0001_0000);
    assert!(header_error(Header::parse(&b)).contains("index entries"));
    let mut b = blob.clone();
    put(&mut b, 4, 0x1000_0000);
    assert!(header_error(Header::parse(&b)).contains("bytes of data"));
    // An entry claiming 2^32-1 items: refused by its extent (INT32) or by the bytes left
    // (strings), never by trying to allocate that many.
    for victim in [tag::DIRINDEXES, tag::BASENAMES] {
        let mut b = blob.clone();
        let h = Header::parse(&b).unwrap();
        let i = h.tags().position(|(t, _)| t == victim).unwrap();
        put(&mut b, 8 + 16 * i + 12, u32::MAX);
        let reason = match Header::parse(&b) {
            Err(e) => e.to_string(),
            Ok(h) => header_error(Package::from_parsed(&h)),
        };
        assert!(
            reason.contains("overrun") || reason.contains("strings in"),
            "{reason}"
        );
    }
}

#[test]
fn corrupted_entries_are_refused() {
    let blob = package_header(&sample());
    let entry = |b: &[u8], t: i32| {
        Header::parse(b)
            .unwrap()
            .tags()
            .position(|(x, _)| x == t)
            .unwrap()
    };
    // An unknown type.
    let mut b = blob.clone();
    let i = entry(&b, tag::NAME);
    put(&mut b, 8 + 16 * i + 4, 42);
    assert!(header_error(Header::parse(&b)).contains("unknown type 42"));
    // A negative offset (pointing back into the index).
    let mut b = blob.clone();
    put(&mut b, 8 + 16 * i + 8, (-32i32) as u32);
    assert!(header_error(Header::parse(&b)).contains("negative offset"));
    // A string with no NUL before the end of the data.
    let mut b = blob.clone();
    let dl = u32::from_be_bytes(blob[4..8].try_into().unwrap());
    put(&mut b, 8 + 16 * i + 8, dl - 1);
    let last = b.len() - 1;
    b[last] = b'x';
    let reason = header_error(Header::parse(&b).and_then(|h| Package::from_parsed(&h)));
    assert!(reason.contains("runs past the data"), "{reason}");
    // The wrong type for a tag the package needs.
    let reason = header_error(Package::from_header(&write_header(
        &[(tag::NAME, Value::Int32(vec![7]))],
        1,
    )));
    assert!(reason.contains("expected a string"), "{reason}");
}

#[test]
fn self_referencing_region_trailers_are_refused() {
    let blob = package_header(&sample());
    let dl = u32::from_be_bytes(blob[4..8].try_into().unwrap()) as usize;
    let il = u32::from_be_bytes(blob[0..4].try_into().unwrap()) as usize;
    let data = 8 + 16 * il;
    let trailer_at = u32::from_be_bytes(blob[16..20].try_into().unwrap()) as usize;
    assert!(trailer_at + 16 <= dl);
    let with_offset = |off: i32| {
        let mut b = blob.clone();
        put(&mut b, data + trailer_at + 8, off as u32);
        b
    };
    // A trailer that covers no entry (points at itself), more entries than the index has,
    // a positive offset, or an offset that is not a whole number of entries.
    for off in [0, -(16 * (il as i32 + 1)), 16, -24, i32::MIN] {
        let reason = header_error(Header::parse(&with_offset(off)));
        assert!(reason.contains("region trailer"), "{off}: {reason}");
    }
    // A region tag whose trailer is not 16 bytes of binary.
    let mut b = blob.clone();
    put(&mut b, 8 + 12, 8);
    assert!(header_error(Header::parse(&b)).contains("a trailer is 16 bytes"));
    // A trailer naming another tag.
    let mut b = blob.clone();
    put(&mut b, data + trailer_at, tag::NAME as u32);
    assert!(header_error(Header::parse(&b)).contains("region trailer"));
}

fn bytes_no_nul(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..max)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8).prop_map(Value::Char),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(Value::Bin),
        prop::collection::vec(any::<u16>(), 1..8).prop_map(Value::Int16),
        prop::collection::vec(any::<u32>(), 1..8).prop_map(Value::Int32),
        prop::collection::vec(any::<u64>(), 1..8).prop_map(Value::Int64),
        bytes_no_nul(12).prop_map(Value::Str),
        prop::collection::vec(bytes_no_nul(12), 1..6).prop_map(Value::Strs),
        prop::collection::vec(bytes_no_nul(12), 1..6).prop_map(Value::I18n),
    ]
}

/// Reads `v` back from `h` with the getter of its type.
fn read_back(h: &Header<'_>, t: i32, v: &Value) -> Value {
    match v {
        Value::Char(_) => Value::Char(h.bytes(t).unwrap().unwrap().to_vec()),
        Value::Int8(_) => Value::Int8(h.bytes(t).unwrap().unwrap().to_vec()),
        Value::Bin(_) => Value::Bin(h.bytes(t).unwrap().unwrap().to_vec()),
        Value::Int16(_) => Value::Int16(h.int16s(t).unwrap().unwrap()),
        Value::Int32(_) => Value::Int32(h.int32s(t).unwrap().unwrap()),
        Value::Int64(_) => Value::Int64(h.int64s(t).unwrap().unwrap()),
        Value::Str(_) => Value::Str(h.string(t).unwrap().unwrap().to_vec()),
        Value::Strs(_) => Value::Strs(to_vecs(h.strings(t).unwrap().unwrap())),
        Value::I18n(_) => Value::I18n(to_vecs(h.strings(t).unwrap().unwrap())),
    }
}

fn to_vecs(v: Vec<&[u8]>) -> Vec<Vec<u8>> {
    v.into_iter().map(<[u8]>::to_vec).collect()
}

fn file() -> impl Strategy<Value = PackageFile> {
    (
        (
            0u32..3,
            bytes_no_nul(10),
            any::<u16>(),
            bytes_no_nul(6),
            bytes_no_nul(6),
        ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            bytes_no_nul(10),
        ),
        (any::<u32>(), -2i8..6, any::<u32>()),
    )
        .prop_map(|(a, b, c)| PackageFile {
            dir: a.0,
            basename: a.1,
            mode: a.2,
            user: a.3,
            group: a.4,
            size: b.0,
            mtime: b.1,
            rdev: b.2,
            digest: b.3.then(|| vec![0x5a; 32]),
            link_target: b.4,
            flags: FileFlags(c.0),
            state: FileState::from_raw(c.1),
            verify: VerifyFlags(c.2),
        })
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+~^-]{1,12}"
}

fn package() -> impl Strategy<Value = Package> {
    (
        (text(), prop::option::of(any::<u32>()), text(), text()),
        (
            prop::option::of(text()),
            prop::option::of("[ -~]{0,20}"),
            prop::option::of(any::<u32>()),
        ),
        prop::collection::vec(file(), 0..12),
    )
        .prop_map(|(a, b, files)| Package {
            hnum: None,
            name: a.0,
            epoch: a.1,
            version: a.2,
            release: a.3,
            arch: b.0,
            vendor: b.1,
            install_time: b.2.map(u64::from),
            digest_algo: DigestAlgo::Sha256,
            dirnames: if files.is_empty() {
                Vec::new()
            } else {
                vec![b"/".to_vec(), b"/usr/lib/".to_vec(), b"/etc/x/".to_vec()]
            },
            files,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any set of entries, with or without a region, reads back entry by entry.
    #[test]
    fn entries_round_trip(
        values in prop::collection::vec((1000i32..1100, value()), 1..12),
        in_region in 0usize..12,
    ) {
        // One entry per tag, so that "the last one counts" does not hide any.
        let mut seen = std::collections::HashSet::new();
        let values: Vec<_> = values.into_iter().filter(|(t, _)| seen.insert(*t)).collect();
        let blob = write_header(&values, in_region.min(values.len()));
        let h = Header::parse(&blob).unwrap();
        for (t, v) in &values {
            prop_assert_eq!(&read_back(&h, *t, v), v);
        }
    }

    /// Any package reads back equal through its header.
    #[test]
    fn packages_round_trip(p in package()) {
        let back = Package::from_header(&package_header(&p)).unwrap();
        prop_assert_eq!(back, p);
    }

    /// Arbitrary bytes are an error or a package, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(blob in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Package::from_header(&blob);
    }

    /// Well-formed headers with bytes flipped, cut or spliced: an error or a package, never a
    /// panic, and never a package with more files than the blob has bytes.
    #[test]
    fn mutated_headers_never_panic(
        p in package(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut blob = package_header(&p);
        for (at, byte) in flips {
            let i = at.index(blob.len());
            blob[i] = byte;
        }
        if do_cut {
            blob.truncate(cut.index(blob.len()));
        }
        if let Ok(back) = Package::from_header(&blob) {
            prop_assert!(back.files.len() <= blob.len());
            for f in &back.files {
                prop_assert!((f.dir as usize) < back.dirnames.len());
            }
        }
    }
}
