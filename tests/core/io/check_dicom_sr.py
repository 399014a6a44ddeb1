#!/usr/bin/python3
"""Reads segrel's TID 1500 relevance report with pydicom (no DCMTK) and compares it with what it should hold.

Usage: check_dicom_sr.py REPORT.dcm EXPECTED.json
EXPECTED.json: {"seg_sop_instance": UID, "study": UID, "evidence": [SOP instance UIDs],
                "groups": [{"tracking_id": NAME, "segments": [N...], "source_series": UID (none: several segments),
                            "measurements": {"CODE[/SEQUENCE]": VALUE, ...}}, ...]}
With "partial": true only the measurements named are compared. Groups are compared in order; a measurement of a
sequence is keyed by its concept's code value and the value of its "Input sequence" modifier.
Prints OK, or what differs and exits 1; exits 77 without pydicom.
"""
import json
import math
import sys

try:
    import pydicom
except ImportError:
    sys.exit(77)

SCHEME = "99SEGREL"


def code_of(item):
    concept = item.ConceptNameCodeSequence[0]
    return concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning


def children(item):
    return list(getattr(item, "ContentSequence", []))


def find_child(item, code_value):
    return [child for child in children(item) if code_of(child)[0] == code_value]


def read_group(group):
    """One TID 1411 measurement group as the expected file writes it."""
    out = {"measurements": {}}
    for child in children(group):
        value, scheme, _ = code_of(child)
        if child.ValueType == "TEXT" and value == "112039":  # Tracking Identifier
            out["tracking_id"] = child.TextValue
        elif child.ValueType == "UIDREF" and value == "112040":  # Tracking Unique Identifier
            out["tracking_uid"] = child.UID
        elif child.ValueType == "UIDREF" and value == "121232":  # Source series for segmentation
            out["source_series"] = child.UID
        elif child.ValueType == "IMAGE" and value == "121191":  # Referenced Segment
            reference = child.ReferencedSOPSequence[0]
            out["segment_sop"] = reference.ReferencedSOPInstanceUID
            segments = reference.ReferencedSegmentNumber
            out["segments"] = [int(s) for s in (segments if isinstance(segments, (list, pydicom.multival.MultiValue))
                                                else [segments])]
        elif child.ValueType == "NUM":
            key = value
            for modifier in find_child(child, "INSEQ"):
                key += "/" + modifier.ConceptCodeSequence[0].CodeMeaning
            # A group of several segments (TID 1501) names them as each measurement's source images.
            sources = [reference for image in find_child(child, "121112") for reference in image.ReferencedSOPSequence]
            if sources:
                out.setdefault("measurement_segments", {})[key] = [int(r.ReferencedSegmentNumber) for r in sources]
                out["segment_sop"] = sources[0].ReferencedSOPInstanceUID
            measured = child.MeasuredValueSequence[0]
            out["measurements"][key] = float(measured.NumericValue)
            unit = measured.MeasurementUnitsCodeSequence[0]
            out.setdefault("units", {})[key] = unit.CodeValue
            if not sources and not find_child(child, "111001"):  # Algorithm Name (TID 4019, in TID 1419)
                out.setdefault("problems", []).append(f"{key} names no algorithm")
    if "segments" not in out and "measurement_segments" in out:
        named = {tuple(segments) for segments in out["measurement_segments"].values()}
        out["segments"] = list(named.pop()) if len(named) == 1 else sorted(named)
    return out


def main():
    report = pydicom.dcmread(sys.argv[1])
    with open(sys.argv[2]) as f:
        expected = json.load(f)
    problems = []

    def expect(what, got, want):
        if got != want:
            problems.append(f"{what}: {got!r}, expected {want!r}")

    expect("Modality", report.Modality, "SR")
    expect("SOPClassUID", report.SOPClassUID, "1.2.840.10008.5.1.4.1.1.88.22")  # Enhanced SR
    expect("StudyInstanceUID", report.StudyInstanceUID, expected["study"])
    expect("document title", code_of(report)[0], "126000")  # Imaging Measurement Report
    expect("template", report.ContentTemplateSequence[0].TemplateIdentifier, "1500")
    evidence = [sop.ReferencedSOPInstanceUID for study in report.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for sop in series.ReferencedSOPSequence]
    expect("evidence", sorted(evidence), sorted(expected["evidence"]))

    imaging = find_child(report, "126010")  # Imaging Measurements
    groups = [g for container in imaging for g in find_child(container, "125007")]  # Measurement Group
    expect("number of measurement groups", len(groups), len(expected["groups"]))
    for index, (group, want) in enumerate(zip(groups, expected["groups"])):
        got = read_group(group)
        where = f"group {index} ({want['tracking_id']})"
        expect(f"{where} tracking id", got.get("tracking_id"), want["tracking_id"])
        expect(f"{where} segments", got.get("segments"), want["segments"])
        expect(f"{where} segment object", got.get("segment_sop"), expected["seg_sop_instance"])
        expect(f"{where} source series", got.get("source_series"), want.get("source_series"))
        for problem in got.get("problems", []):
            problems.append(f"{where}: {problem}")
        if expected.get("partial"):  # only the measurements named are compared
            expect(f"{where} measurements missing", sorted(set(want["measurements"]) - set(got["measurements"])), [])
        else:
            expect(f"{where} measurements", sorted(got["measurements"]), sorted(want["measurements"]))
        for key, value in want["measurements"].items():
            measured = got["measurements"].get(key)
            # DS holds 16 characters: about 12 significant digits for these values.
            if measured is None or not math.isclose(measured, value, rel_tol=1e-10, abs_tol=1e-12):
                problems.append(f"{where} {key}: {measured}, expected {value}")
    # One tracking UID per region, shared by that region's groups only.
    uids = {}
    for group, want in zip(groups, expected["groups"]):
        uids.setdefault(want["tracking_id"], set()).add(read_group(group).get("tracking_uid"))
    for name, values in uids.items():
        expect(f"tracking UIDs of {name}", len(values), 1)
    expect("distinct tracking UIDs", len(set().union(*uids.values())), len(uids))

    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("OK", len(groups), "groups")


if __name__ == "__main__":
    main()
