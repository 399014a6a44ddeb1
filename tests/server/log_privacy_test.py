"""No patient data in the server's logs: every log line the server tests produced (the Python tests' segrel-server
processes, their stderr with the audit trail; the in-process server tests' audit trails, DICOM uploads among them)
is searched for the patient names, IDs and birth dates of the fixtures' DICOM files, and for file names and paths
of the uploads. ctest runs it after the tests that write into the log folder (fixture "server_logs").

Usage: log_privacy_test.py LOG_DIR SOURCE_DIR
"""
import os
import re
import sys
import unittest

LOG_DIR, SOURCE_DIR = sys.argv[1:3]

# Where the test DICOM files get their patient module: one writer (tests/dicom_writer.cc) for every DICOM fixture.
DICOM_WRITER = os.path.join(SOURCE_DIR, "tests", "dicom_writer.cc")


def fixture_identifiers():
    """The patient attributes the DICOM writer puts into every test study, read from its source."""
    with open(DICOM_WRITER) as f:
        source = f.read()
    values = re.findall(r'DCM_Patient(?:Name|ID|BirthDate)\s*,\s*"([^"]+)"', source)
    identifiers = set(values)
    for value in values:  # a name also as the parts a log might print: "SYNTHETIC^PATIENT" -> "SYNTHETIC PATIENT"
        identifiers.update(part for part in re.split(r"[\^ ]", value) if len(part) >= 4)
        identifiers.add(value.replace("^", " "))
    return identifiers


# An upload's files as the spool and the clients name them: never in a log line.
FILE_PATTERNS = [re.compile(p) for p in (r"\.nii(\.gz)?\b", r"\.dcm\b", r"/input/")]
# An audit line (server/audit_log.h) holds these fields and nothing else.
AUDIT_LINE = re.compile(r"^\S+Z segrel-audit( [a-z_]+=[A-Za-z0-9._@:/+%-]+)+$")
AUDIT_FIELDS = {"event", "job", "client", "model", "by", "code", "bytes_in", "bytes_out"}


class LogPrivacyTest(unittest.TestCase):
    def test_no_log_line_names_a_patient_or_an_uploaded_file(self):
        identifiers = fixture_identifiers()
        self.assertGreaterEqual(len(identifiers), 3, f"no patient attributes found in {DICOM_WRITER}")
        self.assertTrue(os.path.isdir(LOG_DIR), f"{LOG_DIR} is missing: run this test with the server tests")
        logs = sorted(os.path.join(LOG_DIR, name) for name in os.listdir(LOG_DIR))
        self.assertTrue(logs, f"{LOG_DIR} holds no logs: run this test with the server tests")
        lines = audit_lines = 0
        for path in logs:
            with open(path, errors="replace") as f:
                for number, line in enumerate(f, 1):
                    lines += 1
                    where = f"{os.path.basename(path)}:{number}: {line.strip()}"
                    for identifier in identifiers:
                        self.assertNotIn(identifier.lower(), line.lower(), f"patient data in a log line: {where}")
                    for pattern in FILE_PATTERNS:
                        self.assertIsNone(pattern.search(line), f"an uploaded file named in a log line: {where}")
                    if "segrel-audit" in line:
                        audit_lines += 1
                        self.assertRegex(line.rstrip("\n"), AUDIT_LINE, where)
                        fields = {field.split("=")[0] for field in line.split()[2:]}
                        self.assertLessEqual(fields, AUDIT_FIELDS, where)
        print(f"searched {lines} lines ({audit_lines} audit lines) in {len(logs)} logs for {sorted(identifiers)}")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
