"""The fault suite: real processes under crashes, outages, full disks and slow providers."""
