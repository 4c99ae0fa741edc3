//! `tinymla convert`: runs [`crate::convert::convert`] and reports what it wrote.

use std::io::{self, Write};

use crate::convert::{convert, ConvertError, Options, Report};

/// Converts and writes a one-line summary to `log` (stderr in the binary).
///
/// # Errors
/// Whatever [`convert`] returns. A failure to write the summary is ignored: the file is
/// already complete by then.
pub fn run(opts: &Options, log: &mut impl Write) -> Result<Report, ConvertError> {
    let report = convert(opts)?;
    let _ = write_summary(&report, opts, log);
    Ok(report)
}

fn write_summary(r: &Report, opts: &Options, log: &mut impl Write) -> io::Result<()> {
    let types: Vec<String> = r.type_counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    writeln!(
        log,
        "wrote {}: {} tensors ({}), {} parameters, {:.2} MiB from {} shard(s) of {:.2} MiB \
         in {:.2} s ({:.1} MiB/s read)",
        opts.output.display(),
        r.n_tensors,
        types.join(", "),
        r.n_params,
        mib(r.output_bytes),
        r.n_shards,
        mib(r.input_bytes),
        r.seconds,
        mib(r.input_bytes) / r.seconds.max(1e-9),
    )
}
