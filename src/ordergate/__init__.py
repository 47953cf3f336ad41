"""ordergate: the order gateway of a multi-user algorithmic trading system.

Strategies emit orders (strategy, instrument, side); users subscribe to strategies; ordergate
decides for which subscribers each order is valid, applies it for exactly those, stores it
durably and answers ACCEPTED or REJECTED. See SPEC section 2 for the rules.
"""

__version__ = "0.1.0"
