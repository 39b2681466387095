"""Lava I/O processes of the backend (`memmap_io`): kept in their own folder because Lava's model search executes
every module of the folder that defines a process."""
