//! Reading objects straight from a repository's object store — loose objects and pack files, deltas resolved —
//! without starting git. Starting `git cat-file` costs 1.5–2 ms on a busy machine before it answers anything, which
//! was the largest part of listing a tree for one assignment. Only the plain case is read here: SHA-1 objects in the
//! repository's own store, no alternates, no replace refs or grafts. Whatever this store cannot read, or finds
//! malformed, the caller asks `git cat-file` instead (see [`super::objects::ObjectReader`]), so git stays the
//! reference.

use anyhow::{bail, ensure, Context as _};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Object kinds as git names them.
pub const KINDS: [&str; 4] = ["commit", "tree", "blob", "tag"];

/// An object read from the store: its kind and contents.
pub type Object = (&'static str, Arc<Vec<u8>>);

const OID_LEN: usize = 20;
/// Where a version 2 pack index's sorted ids start: after its 8-byte header and the 256-entry fan-out table.
const ID_TABLE: u64 = 8 + 256 * 4;
/// Resolved objects kept for later deltas against them (bases are shared between versions of a tree or file).
const CACHE_BYTES: usize = 32 << 20;
/// Deltas on deltas: git writes chains of 50 by default and refuses `pack.depth` above 4095; a longer one is taken
/// for a malformed pack.
const MAX_CHAIN: usize = 4096;
/// Deltas whose base is named by id, resolved one inside another (a recursion, unlike offset deltas): rare in
/// practice, and bounded well below what a thread's stack holds, so that a cycle in a damaged pack is an error.
const MAX_REF_DEPTH: usize = 64;
/// How much of an entry is read at first: its header and, for most entries, all of its compressed data.
const FIRST_READ: usize = 4096;
/// The largest object (or delta) read here, on the caller's thread; a larger one is left to git.
const MAX_OBJECT: usize = 8 << 20;

/// The object store of one repository, read in process.
pub struct ObjectStore {
    objects: PathBuf,
    packs: Vec<Pack>,
    cache: HashMap<(usize, u64), Object>,
    cache_order: VecDeque<(usize, u64)>,
    cache_bytes: usize,
}

struct Pack {
    idx: File,
    data: File,
    data_len: u64,
    fanout: Vec<u32>,
}

impl Pack {
    fn open(idx_path: &Path) -> anyhow::Result<Pack> {
        let idx = File::open(idx_path)?;
        let mut head = vec![0; ID_TABLE as usize];
        idx.read_exact_at(&mut head, 0)?;
        // Version 2 (`\377tOc`, 2): what git has written since 2007. Version 1 is left to git.
        ensure!(head[..8] == [0xff, b't', b'O', b'c', 0, 0, 0, 2], "not a version 2 pack index");
        let fanout: Vec<u32> =
            head[8..].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        ensure!(fanout.windows(2).all(|w| w[0] <= w[1]), "a malformed pack index");
        let data = File::open(idx_path.with_extension("pack"))?;
        let data_len = data.metadata()?.len();
        Ok(Pack { idx, data, data_len, fanout })
    }

    fn count(&self) -> u64 {
        u64::from(self.fanout[255])
    }

    /// Where the object `oid` starts in the pack, if the pack has it.
    fn offset_of(&self, oid: &[u8; OID_LEN]) -> anyhow::Result<Option<u64>> {
        let first = usize::from(oid[0]);
        let lo = if first == 0 { 0 } else { u64::from(self.fanout[first - 1]) };
        let hi = u64::from(self.fanout[first]);
        if lo >= hi {
            return Ok(None);
        }
        // Ids are spread evenly, so an id's place among those with its first byte is close to what its next two
        // bytes say: only the ids around there are read (a bucket of a large pack is tens of KiB), and the whole
        // bucket only when the id lies outside them.
        let estimate = lo + ((((u64::from(oid[1]) << 8) | u64::from(oid[2])) * (hi - lo)) >> 16);
        let half = (2 * (hi - lo).isqrt()).max(16);
        let near = (estimate.saturating_sub(half).max(lo), (estimate + half).min(hi));
        let position = match self.search(near, (lo, hi), oid)? {
            Search::Found(at) => at,
            Search::Absent => return Ok(None),
            Search::Outside => match self.search((lo, hi), (lo, hi), oid)? {
                Search::Found(at) => at,
                Search::Absent | Search::Outside => return Ok(None),
            },
        };
        let table = ID_TABLE;
        let n = self.count();
        let mut small = [0; 4];
        // After the ids: a CRC32 per object, then a 4-byte offset per object, then 8-byte offsets for large packs.
        self.idx.read_exact_at(&mut small, table + n * OID_LEN as u64 + n * 4 + position * 4)?;
        let small = u32::from_be_bytes(small);
        if small & 0x8000_0000 == 0 {
            return Ok(Some(u64::from(small)));
        }
        let mut large = [0; 8];
        let large_at = table + n * OID_LEN as u64 + n * 8 + u64::from(small & 0x7fff_ffff) * 8;
        self.idx.read_exact_at(&mut large, large_at)?;
        Ok(Some(u64::from_be_bytes(large)))
    }

    /// Looks for `oid` among the ids at positions `from..to` of the index, which lie within its bucket
    /// `bucket`.
    fn search(&self, (from, to): (u64, u64), bucket: (u64, u64), oid: &[u8; OID_LEN]) -> anyhow::Result<Search> {
        let mut ids = vec![0; usize::try_from((to - from) * OID_LEN as u64)?];
        self.idx.read_exact_at(&mut ids, ID_TABLE + from * OID_LEN as u64)?;
        let id = |i: usize| &ids[i * OID_LEN..(i + 1) * OID_LEN];
        let count = ids.len() / OID_LEN;
        if count == 0 {
            return Ok(Search::Absent);
        }
        if oid.as_slice() < id(0) {
            return Ok(if from == bucket.0 { Search::Absent } else { Search::Outside });
        }
        if oid.as_slice() > id(count - 1) {
            return Ok(if to == bucket.1 { Search::Absent } else { Search::Outside });
        }
        let (mut left, mut right) = (0, count);
        while left < right {
            let middle = left + (right - left) / 2;
            match id(middle).cmp(oid.as_slice()) {
                std::cmp::Ordering::Equal => return Ok(Search::Found(from + middle as u64)),
                std::cmp::Ordering::Less => left = middle + 1,
                std::cmp::Ordering::Greater => right = middle,
            }
        }
        Ok(Search::Absent)
    }

    /// The bytes of the pack from `offset`, at most `len` of them (fewer at the end of the pack).
    fn bytes(&self, offset: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        // The pack ends with a 20-byte checksum, never part of an object.
        let end = self.data_len.saturating_sub(OID_LEN as u64);
        ensure!(offset < end, "an offset past the end of the pack");
        let len = len.min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let mut buf = vec![0; len];
        self.data.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// Where an id is among some of a pack index's ids.
#[derive(Debug, PartialEq, Eq)]
enum Search {
    /// At this position of the index.
    Found(u64),
    /// Not in the pack.
    Absent,
    /// Not among these ids, but maybe among the others of its bucket.
    Outside,
}

/// One entry of a pack as stored: a whole object, or a delta against another.
enum Entry {
    Whole(&'static str, Vec<u8>),
    OffsetDelta(u64, Vec<u8>),
    RefDelta([u8; OID_LEN], Vec<u8>),
}

impl ObjectStore {
    /// The store of the repository at `repo` (a bare repository or a work tree with `.git`), when it is one this
    /// module can read; `None` leaves every question to git.
    pub fn open(repo: &Path) -> Option<ObjectStore> {
        // Git would read another store than the one found here.
        if ["GIT_DIR", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NO_REPLACE_OBJECTS"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return None;
        }
        let git_dir = if repo.join("objects").is_dir() && repo.join("HEAD").is_file() {
            repo.to_owned()
        } else if repo.join(".git").join("objects").is_dir() {
            repo.join(".git")
        } else {
            return None;
        };
        let objects = git_dir.join("objects");
        // Objects elsewhere, objects replaced, history grafted, or another hash: git's answers could differ.
        if objects.join("info/alternates").exists() || git_dir.join("info/grafts").exists() {
            return None;
        }
        if std::fs::read_dir(git_dir.join("refs/replace")).is_ok_and(|mut d| d.next().is_some())
            || std::fs::read(git_dir.join("packed-refs")).is_ok_and(|p| contains(&p, b"refs/replace/"))
        {
            return None;
        }
        let config = std::fs::read(git_dir.join("config")).unwrap_or_default().to_ascii_lowercase();
        if contains(&config, b"objectformat") || contains(&config, b"compatobjectformat") {
            return None;
        }
        let mut packs = Vec::new();
        for entry in std::fs::read_dir(objects.join("pack")).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "idx") {
                // A pack that cannot be read here is no reason to give up the others: an object in it is looked
                // for by git when not found in them.
                if let Ok(pack) = Pack::open(&path) {
                    packs.push(pack);
                }
            }
        }
        // The largest pack first: most objects are there.
        packs.sort_by_key(|p| std::cmp::Reverse(p.count()));
        Some(ObjectStore { objects, packs, cache: HashMap::new(), cache_order: VecDeque::new(), cache_bytes: 0 })
    }

    /// The object `oid` (40 hex digits): `Ok(None)` when this store does not have it (git may: alternates, a pack
    /// written since it was opened), an error when what it has cannot be read.
    ///
    /// # Errors
    /// A malformed object or pack, or an I/O error.
    pub fn read(&mut self, oid: &str) -> anyhow::Result<Option<Object>> {
        let Some(id) = parse_oid(oid) else { return Ok(None) };
        self.read_id(&id, 0)
    }

    fn read_id(&mut self, id: &[u8; OID_LEN], depth: usize) -> anyhow::Result<Option<Object>> {
        ensure!(depth < MAX_REF_DEPTH, "deltas by id nested too deep");
        for p in 0..self.packs.len() {
            if let Some(offset) = self.packs[p].offset_of(id)? {
                return self.read_packed(p, offset, depth).map(Some);
            }
        }
        self.read_loose(id)
    }

    fn read_loose(&self, id: &[u8; OID_LEN]) -> anyhow::Result<Option<Object>> {
        let hex = hex::encode(id);
        let Ok(raw) = std::fs::read(self.objects.join(&hex[..2]).join(&hex[2..])) else { return Ok(None) };
        let whole = inflate_all(&raw, MAX_OBJECT + 64)?;
        let nul = whole.iter().position(|&b| b == 0).context("a loose object without a header")?;
        let header = std::str::from_utf8(&whole[..nul]).context("a loose object's header")?;
        let (kind, size) = header.split_once(' ').context("a loose object's header")?;
        let kind = KINDS.iter().find(|k| **k == kind).context("a loose object of an unknown kind")?;
        let content = whole[nul + 1..].to_vec();
        ensure!(size.parse::<usize>().ok() == Some(content.len()), "a loose object of the wrong size");
        Ok(Some((kind, Arc::new(content))))
    }

    /// The object at `offset` of pack `p`, its deltas applied.
    fn read_packed(&mut self, p: usize, offset: u64, depth: usize) -> anyhow::Result<Object> {
        // Walk down the chain to a whole object (or one resolved before), then apply the deltas on the way back.
        let mut deltas: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut at = offset;
        let (kind, mut content) = loop {
            if let Some((kind, content)) = self.cache.get(&(p, at)) {
                break (*kind, content.clone());
            }
            ensure!(deltas.len() < MAX_CHAIN, "a delta chain too long");
            match self.entry(p, at)? {
                Entry::Whole(kind, content) => {
                    let content = Arc::new(content);
                    self.remember(p, at, kind, &content);
                    break (kind, content);
                }
                Entry::OffsetDelta(base, delta) => {
                    deltas.push((at, delta));
                    at = base;
                }
                Entry::RefDelta(base, delta) => {
                    let (kind, content) = self.read_id(&base, depth + 1)?.context("a delta's base is missing")?;
                    let content = Arc::new(apply_delta(&content, &delta)?);
                    self.remember(p, at, kind, &content);
                    break (kind, content);
                }
            }
        };
        for (at, delta) in deltas.into_iter().rev() {
            content = Arc::new(apply_delta(&content, &delta)?);
            self.remember(p, at, kind, &content);
        }
        Ok((kind, content))
    }

    fn remember(&mut self, p: usize, offset: u64, kind: &'static str, content: &Arc<Vec<u8>>) {
        if content.len() > CACHE_BYTES / 4 || self.cache.contains_key(&(p, offset)) {
            return;
        }
        self.cache.insert((p, offset), (kind, content.clone()));
        self.cache_order.push_back((p, offset));
        self.cache_bytes += content.len();
        while self.cache_bytes > CACHE_BYTES {
            let Some(old) = self.cache_order.pop_front() else { break };
            if let Some((_, c)) = self.cache.remove(&old) {
                self.cache_bytes -= c.len();
            }
        }
    }

    /// The entry at `offset` of pack `p`, inflated.
    fn entry(&self, p: usize, offset: u64) -> anyhow::Result<Entry> {
        let pack = &self.packs[p];
        // The header: a type and a size, then for a delta where its base is. Most entries (trees, deltas, small
        // files) fit in the first read with their header, so one read is enough.
        let head = pack.bytes(offset, FIRST_READ)?;
        let mut i = 0;
        let mut byte = *head.first().context("an empty pack entry")?;
        let kind = (byte >> 4) & 7;
        let mut size = usize::from(byte & 0x0f);
        let mut shift = 4;
        while byte & 0x80 != 0 {
            i += 1;
            byte = *head.get(i).context("a truncated pack entry header")?;
            ensure!(shift < 60, "a malformed pack entry header");
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
        }
        i += 1;
        ensure!(size <= MAX_OBJECT, "an object too large to read here");
        // The entry's kind and base; its contents follow the header.
        let mut entry = match kind {
            6 => {
                let mut byte = *head.get(i).context("a truncated delta header")?;
                let mut back = u64::from(byte & 0x7f);
                while byte & 0x80 != 0 {
                    i += 1;
                    byte = *head.get(i).context("a truncated delta header")?;
                    ensure!(back < 1 << 56, "a malformed delta header");
                    back = ((back + 1) << 7) | u64::from(byte & 0x7f);
                }
                i += 1;
                ensure!(back > 0 && back <= offset, "a delta whose base is outside the pack");
                Entry::OffsetDelta(offset - back, Vec::new())
            }
            7 => {
                let id: [u8; OID_LEN] =
                    head.get(i..i + OID_LEN).context("a truncated delta header")?.try_into().context("an id")?;
                i += OID_LEN;
                Entry::RefDelta(id, Vec::new())
            }
            1..=4 => Entry::Whole(KINDS[usize::from(kind) - 1], Vec::new()),
            _ => bail!("a pack entry of an unknown type"),
        };
        let content = inflate_at(pack, offset + i as u64, size, head.get(i..).unwrap_or_default())?;
        match &mut entry {
            Entry::Whole(_, c) | Entry::OffsetDelta(_, c) | Entry::RefDelta(_, c) => *c = content,
        }
        Ok(entry)
    }
}

/// Inflates the zlib stream at `offset` of the pack, which must give exactly `size` bytes; `start` is what was read
/// from `offset` already.
fn inflate_at(pack: &Pack, offset: u64, size: usize, start: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut z = flate2::Decompress::new(true);
    // One byte more than expected, so that an entry longer than its header says is noticed rather than cut.
    let mut out = Vec::with_capacity(size + 1);
    // Compressed data is rarely much larger than the data; more is read only while the stream has not ended.
    let mut chunk = size + size / 8 + 64;
    let mut at = offset;
    let mut read_already = Some(start).filter(|s| !s.is_empty());
    loop {
        let owned;
        let input = match read_already.take() {
            Some(s) => s,
            None => {
                owned = pack.bytes(at, chunk)?;
                owned.as_slice()
            }
        };
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status =
            z.decompress_vec(input, &mut out, flate2::FlushDecompress::None).context("a corrupt pack entry")?;
        ensure!(out.len() <= size, "a pack entry larger than its header says");
        if status == flate2::Status::StreamEnd {
            break;
        }
        let used = z.total_in() - in_before;
        ensure!(used > 0 || z.total_out() > out_before, "a corrupt pack entry");
        at += used;
        chunk = chunk.max(4096);
    }
    ensure!(out.len() == size, "a pack entry smaller than its header says");
    Ok(out)
}

/// Inflates a whole zlib stream (a loose object), refusing to give more than `max` bytes.
fn inflate_all(raw: &[u8], max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(raw).take(max as u64 + 1).read_to_end(&mut out).context("a corrupt loose object")?;
    ensure!(out.len() <= max, "a loose object too large to read here");
    Ok(out)
}

/// A size in a delta's header: 7 bits a byte, least significant first.
fn delta_size(delta: &[u8], at: &mut usize) -> anyhow::Result<usize> {
    let mut size = 0usize;
    let mut shift = 0;
    loop {
        let byte = *delta.get(*at).context("a truncated delta")?;
        *at += 1;
        ensure!(shift < 60, "a malformed delta");
        size |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(size);
        }
    }
}

/// `base` changed by a git delta: copies from the base and inserted bytes.
fn apply_delta(base: &[u8], delta: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut at = 0;
    ensure!(delta_size(delta, &mut at)? == base.len(), "a delta for another base");
    let size = delta_size(delta, &mut at)?;
    ensure!(size <= MAX_OBJECT, "an object too large to read here");
    let mut out = Vec::with_capacity(size);
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            let mut field = |bits: std::ops::Range<u8>| -> anyhow::Result<usize> {
                let mut v = 0usize;
                for (n, bit) in bits.enumerate() {
                    if op & (1 << bit) != 0 {
                        v |= usize::from(*delta.get(at).context("a truncated delta")?) << (8 * n);
                        at += 1;
                    }
                }
                Ok(v)
            };
            let from = field(0..4)?;
            let len = match field(4..7)? {
                0 => 0x10000,
                n => n,
            };
            out.extend_from_slice(base.get(from..from + len).context("a delta copying from outside its base")?);
        } else {
            ensure!(op != 0, "a malformed delta");
            let len = usize::from(op);
            out.extend_from_slice(delta.get(at..at + len).context("a truncated delta")?);
            at += len;
        }
        ensure!(out.len() <= size, "a delta giving more than it says");
    }
    ensure!(out.len() == size, "a delta giving less than it says");
    Ok(out)
}

fn parse_oid(hex_id: &str) -> Option<[u8; OID_LEN]> {
    if hex_id.len() != OID_LEN * 2 {
        return None;
    }
    let bytes = hex::decode(hex_id).ok()?;
    bytes.try_into().ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // A `packed-refs` of a repository with many tags and pull-request refs is hundreds of KiB, read at every open.
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::ScratchRepo;

    /// Every object git lists, as `git cat-file --batch` gives it: (id, kind, contents).
    fn every_object(repo: &ScratchRepo) -> Vec<(String, String, Vec<u8>)> {
        let ids = repo.run(&["cat-file", "--batch-all-objects", "--batch-check=%(objectname)"]);
        ids.lines()
            .map(|id| {
                let kind = repo.run(&["cat-file", "-t", id]);
                let out = std::process::Command::new("git")
                    .arg("-C")
                    .arg(repo.dir.path())
                    .args(["cat-file", &kind, id])
                    .output()
                    .expect("git");
                (id.to_owned(), kind, out.stdout)
            })
            .collect()
    }

    fn assert_same_as_git(repo: &ScratchRepo, what: &str) {
        let mut store = ObjectStore::open(repo.dir.path()).expect("a plain repository is read in process");
        let objects = every_object(repo);
        assert!(objects.len() > 40, "{what}: the test repository has objects");
        for (id, kind, content) in objects {
            let (k, c) = store.read(&id).expect(what).unwrap_or_else(|| panic!("{what}: {id} is found"));
            assert_eq!((k, c.as_slice()), (kind.as_str(), content.as_slice()), "{what}: {id}");
        }
        assert!(store.read(&"0".repeat(40)).expect(what).is_none());
    }

    /// A history in which files change a little at a time, so that packing stores most versions as deltas.
    fn history() -> ScratchRepo {
        let repo = ScratchRepo::new();
        let mut text: Vec<String> = (0..200).map(|i| format!("line {i} of a file that grows slowly")).collect();
        for round in 0..12 {
            text[round * 7] = format!("changed in round {round}");
            text.insert(round * 11, format!("inserted in round {round}"));
            let body = text.join("\n");
            let other = format!("{body}\nand another ending {round}");
            repo.commit(&[("src/app/main.py", Some(&body)), (&format!("docs/n{}.md", round % 3), Some(&other))]);
        }
        repo.run(&["-c", "user.name=A", "-c", "user.email=a@x", "tag", "-a", "v1", "-m", "one"]);
        repo
    }

    #[test]
    fn loose_and_packed_objects_read_as_git_reads_them() {
        let repo = history();
        assert_same_as_git(&repo, "loose objects");
        // Deltas against an offset in the same pack (git's default), chained deep.
        repo.run(&["repack", "-adf", "--depth=50", "--window=50"]);
        let mut store = ObjectStore::open(repo.dir.path()).expect("test set-up");
        assert!(store.packs.iter().any(|p| p.count() > 40), "objects are packed");
        let idx = std::fs::read_dir(repo.dir.path().join(".git/objects/pack"))
            .expect("test set-up")
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "idx"))
            .expect("an index");
        let verified = repo.run(&["verify-pack", "-v", &idx.path().to_string_lossy()]);
        assert!(verified.contains("chain length = 5:"), "deltas on deltas: {verified}");
        assert!(store.read(&repo.run(&["rev-parse", "HEAD"])).expect("test set-up").is_some());
        assert_same_as_git(&repo, "offset deltas");
        // Deltas naming their base by id, as older packs and some servers' packs do.
        repo.run(&["-c", "repack.useDeltaBaseOffset=false", "repack", "-adf", "--depth=50", "--window=50"]);
        assert_same_as_git(&repo, "ref deltas");
        // A pack beside loose objects written after it.
        repo.commit(&[("src/app/new.py", Some("print('new')\n"))]);
        assert_same_as_git(&repo, "a pack and loose objects");
    }

    #[test]
    fn an_id_is_found_wherever_it_lies_among_those_with_its_first_byte() {
        // Enough objects that every first byte is shared by several ids, written as one pack.
        let repo = ScratchRepo::new();
        let stream: String = (0..3000).map(|i| format!("blob\ndata <<END\nobject {i}\nEND\n")).collect();
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(repo.dir.path())
            .args(["fast-import", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("git fast-import");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), stream.as_bytes()).expect("fast-import input");
        drop(child.stdin.take());
        assert!(child.wait().expect("fast-import").success());
        let store = ObjectStore::open(repo.dir.path()).expect("a plain repository is read in process");
        let pack = store.packs.iter().find(|p| p.count() >= 3000).expect("one pack holds them");
        let ids: Vec<[u8; OID_LEN]> = repo
            .run(&["cat-file", "--batch-all-objects", "--batch-check=%(objectname)"])
            .lines()
            .map(|id| parse_oid(id).expect("an id"))
            .collect();
        let mut narrow = 0;
        for (k, id) in ids.iter().enumerate() {
            let at = k as u64;
            let first = usize::from(id[0]);
            let (lo, hi) =
                (if first == 0 { 0 } else { u64::from(pack.fanout[first - 1]) }, u64::from(pack.fanout[first]));
            assert!((lo..hi).contains(&at), "git lists ids in index order");
            let search_for = |id, window| pack.search(window, (lo, hi), id).expect("readable");
            let search = |window| search_for(id, window);
            assert_eq!(search((lo, hi)), Search::Found(at));
            if hi - lo >= 3 {
                narrow += 1;
                // Windows at either end of the bucket: found there, or known to lie elsewhere in it.
                let start = if at == lo { Search::Found(at) } else { Search::Outside };
                let end = if at == hi - 1 { Search::Found(at) } else { Search::Outside };
                assert_eq!((search((lo, lo + 1)), search((hi - 1, hi))), (start, end), "{}", hex::encode(id));
            }
            assert!(pack.offset_of(id).expect("readable").is_some(), "{}", hex::encode(id));
            // An id next to one the pack has, which it does not have.
            let mut other = *id;
            other[OID_LEN - 1] ^= 1;
            if !ids.contains(&other) {
                assert_eq!(pack.offset_of(&other).expect("readable"), None);
                for window in [(lo, lo + 1), (hi - 1, hi), (lo, hi)] {
                    assert!(!matches!(search_for(&other, window), Search::Found(_)), "{}", hex::encode(other));
                }
            }
        }
        assert!(narrow > 2500, "most ids share their first byte with two or more others");
    }

    #[test]
    fn a_damaged_pack_gives_errors_not_a_panic_or_wrong_contents() {
        let repo = history();
        repo.run(&["repack", "-adf", "--depth=50", "--window=50"]);
        let objects = every_object(&repo);
        let pack_dir = repo.dir.path().join(".git/objects/pack");
        let pack = std::fs::read_dir(&pack_dir)
            .expect("test set-up")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "pack"))
            .expect("a pack");
        let good = std::fs::read(&pack).expect("test set-up");
        // Every 97th byte flipped in turn, then the pack cut short: each read errs, misses, or is still right.
        for damage in 0..good.len() / 97 {
            let mut bad = good.clone();
            if damage % 2 == 0 {
                bad[12 + damage * 97 % (good.len() - 32)] ^= 0x5a;
            } else {
                bad.truncate(good.len() * damage / (good.len() / 97));
            }
            std::fs::write(&pack, &bad).expect("test set-up");
            let mut store = ObjectStore::open(repo.dir.path()).expect("test set-up");
            for (id, kind, content) in objects.iter().step_by(7) {
                if let Ok(Some((k, c))) = store.read(id) {
                    // zlib's checksum catches a flipped byte inside compressed data; one in a header or a delta's
                    // base offset can only make the read fail.
                    assert_eq!((k, c.as_slice()), (kind.as_str(), content.as_slice()), "damage {damage}: {id}");
                }
            }
        }
        std::fs::write(&pack, &good).expect("test set-up");
    }

    #[test]
    fn repositories_git_would_read_differently_are_left_to_git() {
        let repo = history();
        assert!(ObjectStore::open(repo.dir.path()).is_some());
        assert!(ObjectStore::open(&repo.dir.path().join(".git")).is_some(), "the git directory itself");
        let head = repo.run(&["rev-parse", "HEAD"]);
        let parent = repo.run(&["rev-parse", "HEAD^"]);
        repo.run(&["replace", &head, &parent]);
        assert!(ObjectStore::open(repo.dir.path()).is_none(), "a replaced object");
        repo.run(&["replace", "-d", &head]);
        assert!(ObjectStore::open(repo.dir.path()).is_some());
        std::fs::write(repo.dir.path().join(".git/objects/info/alternates"), "/elsewhere\n").expect("test set-up");
        assert!(ObjectStore::open(repo.dir.path()).is_none(), "objects in another store");
        let sha256 = tempfile::tempdir().expect("test set-up");
        let out = std::process::Command::new("git")
            .args(["init", "-q", "--object-format=sha256"])
            .arg(sha256.path())
            .output()
            .expect("git");
        assert!(out.status.success());
        assert!(ObjectStore::open(sha256.path()).is_none(), "another hash");
        assert!(ObjectStore::open(Path::new("/nonexistent")).is_none());
    }

    #[test]
    fn a_delta_copies_and_inserts() {
        let base = b"0123456789";
        // Sizes 10 → 7; copy 4 bytes from offset 2; insert "xyz".
        let delta = [10, 7, 0x80 | 0x01 | 0x10, 2, 4, 3, b'x', b'y', b'z'];
        assert_eq!(apply_delta(base, &delta).expect("a valid delta"), b"2345xyz");
        assert!(apply_delta(b"short", &delta).is_err(), "a delta for another base");
        assert!(apply_delta(base, &[10, 7, 0x80 | 0x01 | 0x10, 8, 4]).is_err(), "a copy past the base's end");
        assert!(apply_delta(base, &[10, 7, 0]).is_err(), "the reserved instruction");
        assert!(apply_delta(base, &[10, 2, 3, b'a', b'b', b'c']).is_err(), "more than the delta says");
    }
}
