"""SMS banking: a keyword engine on inbound SMS (HELP, BALANCE, PIN, STOP/START), officer
collections by SMS, collection-sheet codes, mobile-money payment notices by SMS, and the branch
manager's phone pages. See docs/smsbanking.md."""
