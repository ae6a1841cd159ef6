"""Tests of the test bed: the CrateDB stand-in answers as CrateDB does, the proxy, the SeaweedFS launcher."""
