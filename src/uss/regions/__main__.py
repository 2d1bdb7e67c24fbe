"""python -m uss.regions sam | superpixel demo|paper: the region flags the shell scripts pass (uss.regions.defaults)."""
from uss.regions.defaults import main

main()
