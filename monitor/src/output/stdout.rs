//! The stdout output: one alert per line, Falco's text or JSON.

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::{DeliveryError, Format};
use crate::alert::Alert;

pub struct StdoutSink {
    out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    format: Format,
    /// With `buffered_outputs`, lines are flushed when the queue runs empty rather than one by
    /// one, which saves write calls during a burst.
    buffered: bool,
}

impl StdoutSink {
    pub fn new(out: Box<dyn AsyncWrite + Send + Unpin>, format: Format, buffered: bool) -> Self {
        StdoutSink {
            out: BufWriter::new(out),
            format,
            buffered,
        }
    }

    pub async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let mut line = self.format.render(alert);
        line.push('\n');
        self.out.write_all(line.as_bytes()).await?;
        if !self.buffered {
            self.out.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), DeliveryError> {
        Ok(self.out.flush().await?)
    }
}
