#!/usr/bin/env python3
"""tools/layers/check_layers.py: the real core/ passes, and a backwards include in a copy of it is caught."""
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = pathlib.Path(sys.argv.pop(1) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
CHECK = SOURCE / "tools/layers/check_layers.py"


def run(source_dir):
    return subprocess.run([sys.executable, str(CHECK), str(source_dir)], capture_output=True, text=True)


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.temp = pathlib.Path(tempfile.mkdtemp())
        shutil.copytree(SOURCE / "core", self.temp / "core")

    def tearDown(self):
        shutil.rmtree(self.temp)

    def add_line(self, relative, line):
        path = self.temp / "core" / relative
        path.write_text(line + "\n" + path.read_text())

    def test_the_real_core_is_layered(self):
        result = run(SOURCE)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_a_backwards_include_is_caught(self):
        self.add_line("io/study.cc", '#include "core/pipeline/pipeline.h"')
        result = run(self.temp)
        self.assertEqual(result.returncode, 1)
        self.assertIn("core/io/study.cc:1: #include core/pipeline/pipeline.h: core/io is below core/pipeline",
                      result.stderr)

    def test_report_may_not_include_the_pipeline_and_lrp_not_io(self):
        self.add_line("report/cohort.cc", '#include "core/pipeline/pipeline.h"')
        self.add_line("lrp/rule.cc", '#include "core/io/nifti.h"')
        result = run(self.temp)
        self.assertEqual(result.returncode, 1)
        self.assertIn("core/report is below core/pipeline", result.stderr)
        self.assertIn("core/lrp is below core/io", result.stderr)
        self.assertIn("2 includes break the layering", result.stderr)

    def test_network_layers_and_dcmtk_outside_io_are_caught(self):
        self.add_line("analysis/regions.cc", '#include "server/job.h"')
        self.add_line("model/bundle.cc", '#include <grpcpp/grpcpp.h>')
        self.add_line("volume/volume.cc", '#include "dcmtk/dcmdata/dctk.h"')
        result = run(self.temp)
        self.assertEqual(result.returncode, 1)
        self.assertIn("regions.cc:1: #include server/job.h: core/ must not use the network layers", result.stderr)
        self.assertIn("bundle.cc:1: #include grpcpp/grpcpp.h: core/ must not use the network layers", result.stderr)
        self.assertIn("volume.cc:1: #include dcmtk/dcmdata/dctk.h: only core/io may use DCMTK", result.stderr)

    def test_a_folder_outside_the_chain_is_caught(self):
        (self.temp / "core/extra").mkdir()
        (self.temp / "core/extra/thing.h").write_text("\n")
        result = run(self.temp)
        self.assertEqual(result.returncode, 1)
        self.assertIn("folder core/extra is not in the layering", result.stderr)


if __name__ == "__main__":
    unittest.main()
