"""Root pytest configuration: the notebooks' kernels (nbval) and the tests run on one CPU
thread unless ``OMP_NUM_THREADS`` says otherwise. The zoo's models are small; torch's thread
pool only slows their many tiny operations down, badly on a busy machine (measured on the
2-core reference machine under load: SAE training 15 times slower with 2 threads than with
1). ``make test-portable`` runs the notebooks again with 2 threads and another kernel path.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
