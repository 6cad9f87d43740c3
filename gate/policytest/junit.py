"""JUnit XML for `gate test --junit`: one testsuite per test file, one testcase per case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gate.policytest.runner import FileResult


def _suite(result: FileResult) -> ET.Element:
    failures = sum(bool(r.failures) and r.error is None for r in result.results)
    errors = sum(r.error is not None for r in result.results) + (result.error is not None)
    seconds = sum(r.seconds for r in result.results)
    suite = ET.Element(
        "testsuite",
        name=str(result.path),
        tests=str(len(result.results) + (result.error is not None)),
        failures=str(failures),
        errors=str(errors),
        time=f"{seconds:.3f}",
    )
    if result.error is not None:
        case = ET.SubElement(suite, "testcase", classname=str(result.path), name="load policies and cases")
        ET.SubElement(case, "error", message=result.error.splitlines()[0]).text = result.error
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname=str(result.path), name=r.case.name, time=f"{r.seconds:.3f}")
        if r.error is not None:
            ET.SubElement(case, "error", message=r.error.splitlines()[0]).text = r.error
        elif r.failures:
            ET.SubElement(case, "failure", message=r.failures[0]).text = "\n".join(r.failures)
    return suite


def junit_xml(results: Sequence[FileResult]) -> str:
    root = ET.Element("testsuites", name="gate test")
    suites = [_suite(r) for r in results]
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.extend(suites)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
