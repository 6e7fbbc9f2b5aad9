"""What hlsflow knows about Xilinx HLS installs: which versions exist in a mounted tree, which
hls4ml backend each supports, the command line that runs a project's build script (xilinx.py),
and the checks made before hours are spent on one (doctor.py). Imports no stage."""
