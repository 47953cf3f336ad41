"""The original kit's profile generator: ``python Scripts/Generate_User_Profile.py [--users N] [--seed N]``.

A thin shim over ``ordergate generate``; it writes Jsons/user_profile.json under the current folder.
"""

import sys

from ordergate.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]], prog_name="Generate_User_Profile.py")
