//! The file output (Falco's `file_output`): one alert per line, appended.
//!
//! With `keep_alive: false` (Falco's default) the file is opened and closed for every alert, so
//! that logrotate can move it at any time; with `keep_alive: true` it stays open and is
//! reopened on reload (SIGHUP), logrotate's `postrotate` hook.

use std::path::PathBuf;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::{DeliveryError, Format, OutputError};
use crate::alert::Alert;
use crate::config::FileOutputConfig;

pub struct FileSink {
    path: PathBuf,
    keep_alive: bool,
    buffered: bool,
    format: Format,
    file: Option<BufWriter<File>>,
}

fn open_std(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl FileSink {
    /// Opens the file now, so that a path that cannot be written is reported at start-up (or
    /// makes a reload fail and keep the old configuration).
    pub fn open(
        cfg: &FileOutputConfig,
        format: Format,
        buffered: bool,
    ) -> Result<Self, OutputError> {
        let f = open_std(&cfg.filename).map_err(|source| OutputError::FileOpen {
            path: cfg.filename.clone(),
            source,
        })?;
        Ok(FileSink {
            path: cfg.filename.clone(),
            keep_alive: cfg.keep_alive,
            buffered,
            format,
            file: cfg.keep_alive.then(|| BufWriter::new(File::from_std(f))),
        })
    }

    async fn open_async(&self) -> std::io::Result<BufWriter<File>> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        Ok(BufWriter::new(f))
    }

    pub async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let mut line = self.format.render(alert);
        line.push('\n');
        if !self.keep_alive {
            let mut f = self.open_async().await?;
            f.write_all(line.as_bytes()).await?;
            f.flush().await?;
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(self.open_async().await?),
        };
        let written = file.write_all(line.as_bytes()).await;
        let written = match written {
            Ok(()) if !self.buffered => file.flush().await,
            other => other,
        };
        if written.is_err() {
            // Try a fresh handle next time (the disk may come back, or the file was removed).
            self.file = None;
        }
        Ok(written?)
    }

    pub async fn flush(&mut self) -> Result<(), DeliveryError> {
        if let Some(f) = &mut self.file {
            f.flush().await?;
        }
        Ok(())
    }

    /// Closes and opens the file again by name (after logrotate moved it away).
    pub async fn reopen(&mut self) -> Result<(), DeliveryError> {
        if !self.keep_alive {
            return Ok(());
        }
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
        }
        self.file = Some(self.open_async().await?);
        Ok(())
    }
}
