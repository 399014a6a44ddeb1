// Charts with text: runs the gnuplot program (Debian package gnuplot-nox) on a script segrel generates. The
// pictures and the cohort report draw their bar and line charts through it; segrel draws no text itself.
//
// Scripts carry their data as inline datablocks ($name << EOD ... EOD) and use the pngcairo terminal, which
// Debian's gnuplot-nox has (gnuplot 5.4). RunGnuplot writes the script to a temporary file, runs gnuplot on it
// and removes the file again. The functions are thread-safe (each run has its own temporary folder).
#ifndef SEGREL_CORE_REPORT_GNUPLOT_H_
#define SEGREL_CORE_REPORT_GNUPLOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace segrel::report {

// `text` as a gnuplot single-quoted string (no escapes inside; a quote is doubled). Use it for file names, titles
// and labels, with the terminal's `noenhanced` option so that '_' and '^' stay as they are.
std::string GnuplotQuote(absl::string_view text);

// `text` as a double-quoted string inside a datablock row: gnuplot's data files know no escapes, so a double quote
// in `text` becomes a single quote.
std::string GnuplotDataString(absl::string_view text);

// The header every chart script starts with: the pngcairo terminal, `width` x `height` pixels, no enhanced text,
// any further terminal `options` (e.g. "background rgb 'black'"), output to `output`.
std::string GnuplotPngHeader(const std::string& output, int width, int height, absl::string_view options = "");

// Runs gnuplot on `script`, which must write the PNG `output` (see GnuplotPngHeader). On success `output` exists and
// is not empty. Errors, each naming `output`: FailedPrecondition when gnuplot is not installed; Internal when it
// fails (with its exit status and the first line of its error output) or writes nothing, or the temporary script
// cannot be written.
absl::Status RunGnuplot(const std::string& script, const std::string& output);

}  // namespace segrel::report

#endif  // SEGREL_CORE_REPORT_GNUPLOT_H_
