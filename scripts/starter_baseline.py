"""The HW1P2 starter-notebook reference loop; it lives in phonemlp/starter_baseline.py.

python scripts/starter_baseline.py ROOT --context 20 --epochs 2 --widths 1024 1024 1024
"""

from phonemlp.starter_baseline import main

if __name__ == "__main__":
    main()
