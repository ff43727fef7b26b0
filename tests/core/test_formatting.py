

def test_counts_are_written_with_their_noun_in_the_singular_or_plural():
    from imali.core.formatting import counted

    assert [counted(1, "payment"), counted(2, "payment"), counted(0, "credit"), counted(1250, "credit"),
            counted(1, "SMS", "SMSes"), counted(3, "SMS", "SMSes")] == [
        "1 payment", "2 payments", "0 credits", "1,250 credits", "1 SMS", "3 SMSes"]
