//! The exchange log on disk: append-only segment files (`log/00000001.seg`, …), each a
//! header followed by framed records ([`crate::log::record`]). One writer ([`Appender`],
//! owned by the committer) appends a group commit's frames with one write and one
//! `fdatasync`; readers ([`Segments`]) read a record at a position with one positioned read,
//! from any thread. A segment is closed once it passes its size and never written again.
//!
//! A position is `segment << 32 | offset`: segments stay below 4 GiB.

use crate::log::record::{self, FrameError, Frames};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The first bytes of every segment file: what it is and the version of its format.
pub const SEGMENT_MAGIC: &[u8; 8] = b"IPEXLOG2";
/// Where the first record of a segment begins.
pub const FIRST_OFFSET: u64 = SEGMENT_MAGIC.len() as u64;
/// Largest segment the writer lets grow (a batch that starts below it may end above it).
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64 / 2;

/// A record's place in the log.
pub fn position(segment: u32, offset: u64) -> u64 {
    (u64::from(segment) << 32) | offset
}

/// The segment and offset of a position.
pub fn split(pos: u64) -> (u32, u64) {
    ((pos >> 32) as u32, pos & 0xffff_ffff)
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

/// The segments of a log directory, by number.
pub fn list(dir: &Path) -> io::Result<Vec<u32>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            segments.push(n);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Reading the log: one positioned read per record, from any thread.
pub struct Segments {
    /// The log directory.
    dir: PathBuf,
    /// Open segment files, by number.
    files: RwLock<BTreeMap<u32, Arc<File>>>,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system failed.
    #[error("log segment {segment}: {source}")]
    Io {
        /// The segment.
        segment: u32,
        /// Why.
        source: io::Error,
    },
    /// The bytes there are not the record that was written.
    #[error("log segment {segment}: {source}")]
    Frame {
        /// The segment.
        segment: u32,
        /// What is wrong.
        source: FrameError,
    },
}

impl Segments {
    /// The segments in `dir`, which must exist.
    pub fn open(dir: &Path) -> io::Result<Segments> {
        let mut files = BTreeMap::new();
        for n in list(dir)? {
            files.insert(n, Arc::new(File::open(segment_path(dir, n))?));
        }
        Ok(Segments {
            dir: dir.to_path_buf(),
            files: RwLock::new(files),
        })
    }

    /// The numbers of the segments.
    pub fn numbers(&self) -> Vec<u32> {
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    fn file(&self, segment: u32) -> Result<Arc<File>, ReadError> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&segment)
        {
            return Ok(f.clone());
        }
        let file = Arc::new(
            File::open(segment_path(&self.dir, segment))
                .map_err(|source| ReadError::Io { segment, source })?,
        );
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(segment, file.clone());
        Ok(file)
    }

    /// The payload of the frame of `len` bytes at `pos`, checked.
    pub fn read(&self, pos: u64, len: u32) -> Result<Vec<u8>, ReadError> {
        let (segment, offset) = split(pos);
        let file = self.file(segment)?;
        let mut frame = vec![0; len as usize];
        file.read_exact_at(&mut frame, offset)
            .map_err(|source| ReadError::Io { segment, source })?;
        let payload = record::unframe(&frame, offset)
            .map_err(|source| ReadError::Frame { segment, source })?;
        Ok(payload.to_vec())
    }

    /// The bytes of `segment` from `offset` to its end.
    pub fn tail(&self, segment: u32, offset: u64) -> Result<Vec<u8>, ReadError> {
        let file = self.file(segment)?;
        let io = |source| ReadError::Io { segment, source };
        let len = file.metadata().map_err(io)?.len();
        let mut bytes = vec![0; len.saturating_sub(offset) as usize];
        file.read_exact_at(&mut bytes, offset).map_err(io)?;
        Ok(bytes)
    }

    /// Calls `each` with every frame from `from` to the end of the log, in order, as
    /// `(segment, offset, payload)`; stops at the first error, which it returns with its
    /// segment (a torn end is an error too: the caller decides what it means).
    pub fn scan(
        &self,
        from: u64,
        mut each: impl FnMut(u32, u64, &[u8]) -> Result<(), ScanStop>,
    ) -> Result<(), ScanStop> {
        let (first, offset) = split(from);
        for segment in self.numbers().into_iter().filter(|n| *n >= first) {
            let start = if segment == first {
                offset
            } else {
                FIRST_OFFSET
            };
            let start = start.max(FIRST_OFFSET);
            let bytes = self.tail(segment, start).map_err(ScanStop::Read)?;
            for frame in Frames::new(&bytes, start) {
                let (at, payload) =
                    frame.map_err(|source| ScanStop::Read(ReadError::Frame { segment, source }))?;
                each(segment, at, payload)?;
            }
        }
        Ok(())
    }
}

/// Why a scan stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanStop {
    /// Reading failed, or a frame is torn or damaged.
    #[error(transparent)]
    Read(ReadError),
    /// The caller stopped it.
    #[error("{0}")]
    Caller(String),
}

/// Appending to the log: owned by the one writer.
pub struct Appender {
    /// The log directory.
    dir: PathBuf,
    /// The segment being written (shared with whoever syncs what was written to it).
    file: Arc<File>,
    /// Its number.
    segment: u32,
    /// Its length: where the next frame goes.
    len: u64,
    /// The size after which a new segment begins.
    segment_bytes: u64,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Appender {
    /// Appends after the last segment of `dir` (which ends at `len`: whatever follows is cut),
    /// or creates the first one.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<Appender> {
        let segment_bytes = segment_bytes.clamp(FIRST_OFFSET + 1, MAX_SEGMENT_BYTES);
        match list(dir)?.last() {
            Some(&segment) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(segment_path(dir, segment))?;
                let len = file.metadata()?.len();
                Ok(Appender {
                    dir: dir.to_path_buf(),
                    file: Arc::new(file),
                    segment,
                    len,
                    segment_bytes,
                })
            }
            None => Appender::create(dir, 1, segment_bytes),
        }
    }

    fn create(dir: &Path, segment: u32, segment_bytes: u64) -> io::Result<Appender> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(segment_path(dir, segment))?;
        file.write_all(SEGMENT_MAGIC)?;
        file.sync_all()?;
        // The new file's name must survive a crash as much as its contents.
        sync_dir(dir)?;
        Ok(Appender {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            segment,
            len: FIRST_OFFSET,
            segment_bytes,
        })
    }

    /// Where the next frame goes.
    pub fn end(&self) -> u64 {
        position(self.segment, self.len)
    }

    /// Cuts the segment being written at `offset` (a torn end found at start-up).
    pub fn truncate(&mut self, offset: u64) -> io::Result<()> {
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        self.len = offset;
        Ok(())
    }

    /// Writes `frames` (whole frames) after the log's end, starting a new segment first if
    /// the current one is full, and makes them durable with one `fdatasync`. Returns the
    /// position of the first byte written.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<u64> {
        let (at, file) = self.write(frames)?;
        file.sync_data()?;
        Ok(at)
    }

    /// Writes `frames` (whole frames) after the log's end, starting a new segment first if
    /// the current one is full, without waiting for the disk. Returns the position of the
    /// first byte written and the file written, whose `sync_data` makes this write and every
    /// earlier one durable: a segment is synced in full before the next one begins.
    pub fn write(&mut self, frames: &[u8]) -> io::Result<(u64, Arc<File>)> {
        if self.len >= self.segment_bytes && self.len > FIRST_OFFSET {
            self.file.sync_data()?;
            *self = Appender::create(&self.dir, self.segment + 1, self.segment_bytes)?;
        }
        let at = self.end();
        self.file.write_all_at(frames, self.len)?;
        self.len += frames.len() as u64;
        Ok((at, self.file.clone()))
    }

    /// The position `frames` would start at if appended now (the start of a new segment
    /// when the current one is full).
    pub fn next_position(&self) -> u64 {
        if self.len >= self.segment_bytes && self.len > FIRST_OFFSET {
            position(self.segment + 1, FIRST_OFFSET)
        } else {
            self.end()
        }
    }
}
