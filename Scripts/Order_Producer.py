"""The original kit's producer: ``python Scripts/Order_Producer.py [--count 300] [--interval 1.0] ...``.

A thin shim over ``ordergate produce``: by default 300 random orders, one a second, to
http://127.0.0.1:8080/create_order.
"""

import sys

from ordergate.cli import main

if __name__ == "__main__":
    main(["produce", *sys.argv[1:]], prog_name="Order_Producer.py")
