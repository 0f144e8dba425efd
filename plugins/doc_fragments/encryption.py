# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  encryption:
    description:
      - How archives are encrypted, in the age v1 format, so that the stock C(age) tool can always decrypt them
        (C(age -d -i key.txt backup.tar.age > backup.tar)).
      - To read an archive, give the key that opens it (O(encryption.passphrase), O(encryption.identity),
        O(encryption.identity_file)); with O(encryption.mode=database_password), O(login_password) is the key.
      - A wrong passphrase or key fails with a message that says so, before anything is touched.
    type: dict
    default: {mode: none}
    suboptions:
      mode:
        description:
          - V(none) writes plain archives.
          - V(passphrase) encrypts with O(encryption.passphrase).
          - V(database_password) encrypts with the environment's O(login_password), so whoever can open the
            database can open its backups and there is no second secret to manage.
          - V(recipients) encrypts to age public keys (O(encryption.recipients)); the node needs no secret at
            all, and restoring takes the matching O(encryption.identity) or O(encryption.identity_file).
        type: str
        default: none
        choices: [none, passphrase, database_password, recipients]
      passphrase:
        description:
          - The passphrase (age scrypt recipient).
        type: str
      recipients:
        description:
          - Age public keys (C(age1...)) to encrypt to.
        type: list
        elements: str
      identity:
        description:
          - An age secret key (C(AGE-SECRET-KEY-1...)) that opens the archive.
        type: str
      identity_file:
        description:
          - A file on the node with age secret keys, as C(age-keygen) writes it.
        type: path
      work_factor:
        description:
          - The scrypt work factor (log2 N) when encrypting with a passphrase, from 10 to 22. Each step doubles
            the time and memory that encrypting and decrypting take (18 takes 256 MiB and about a second).
        type: int
        default: 18
      max_work_factor:
        description:
          - The highest scrypt work factor (log2 N) that a passphrase-encrypted file may ask for when it is
            decrypted, from 10 to 24. A file above it is refused before scrypt runs, so that a crafted file
            cannot make the node spend minutes and gigabytes.
          - The default is the limit of the reference C(age) tool. Raise it only for files you trust
            (22 takes 4 GiB of memory, 24 takes 16 GiB).
        type: int
        default: 22
"""
